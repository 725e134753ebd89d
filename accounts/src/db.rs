//! accounts.db: the SQLite adapter for users, sessions, tokens, workspaces, members, invites,
//! device bindings and usage. Every change is one transaction; checks that depend on the data
//! (the last owner, an invite's uses) run inside it, so concurrent requests cannot both pass.
//! Secrets arrive already digested ([`crate::secret::digest`]); times are ms since the epoch,
//! passed in by the caller.
//!
//! Several connections (WAL): reads from many requests run side by side, and the command line
//! (`server user ...`) writes beside a running server.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use tandem_store::rusqlite::{self, params, Connection, OptionalExtension, TransactionBehavior};

use crate::names::{NameError, Role};
use crate::store::AccountStore;

/// A session lasts this long after its last use (CONTRACT.md: 30 days).
pub const SESSION_IDLE_MS: i64 = 30 * 24 * 60 * 60 * 1_000;
/// A session's or token's last use is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;
const CONNECTIONS: usize = 4;
/// Bounds on what one account can make (DESIGN.md rule 22).
pub const MAX_SESSIONS_PER_USER: i64 = 50;
pub const MAX_TOKENS_PER_USER: i64 = 100;
pub const MAX_WORKSPACES_PER_USER: i64 = 1_000;
pub const MAX_PENDING_INVITES: i64 = 100;
const MAX_USER_AGENT_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("accounts.db: {0}")]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Open(#[from] tandem_store::StoreError),
    #[error("that username is taken")]
    UsernameTaken,
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    /// Not a member, no such workspace, or not allowed: one answer for all (rule 23).
    #[error("{0}")]
    Forbidden(String),
    #[error("the last owner of a workspace cannot leave it or stop being its owner")]
    LastOwner,
    #[error("this invite has expired, been used up or been revoked")]
    InviteGone,
    #[error("not found")]
    NotFound,
    #[error("the first account exists already")]
    NotFirst,
    #[error("{0}")]
    TooMany(String),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("accounts.db holds a value this build cannot read: {0}")]
    Corrupt(String),
    /// The accounts' database failed (PostgreSQL's; SQLite's failures are [`Self::Db`]).
    #[error("the accounts database: {0}")]
    Backend(String),
    /// A wait ran out (another holder kept what this needed); the request may be tried again.
    #[error("{0}")]
    Busy(String),
}

/// The one answer for a workspace one may not touch, whether it exists or not.
pub const NOT_A_MEMBER: &str = "you are not a member of this workspace, or it does not exist";

fn forbidden() -> AccountsError {
    AccountsError::Forbidden(NOT_A_MEMBER.into())
}

/// A person, as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub user_id: String,
    pub username: String,
}

/// A user's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub deleted: bool,
    pub created_at: i64,
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    Session { session_id: String },
    Token { token_id: String },
}

/// A signed-in caller: the account and the credential it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: User,
    pub is_admin: bool,
    pub credential: Credential,
}

impl Principal {
    pub fn is_token(&self) -> bool {
        matches!(self.credential, Credential::Token { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceInfo {
    pub workspace_id: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub token_id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A pending invite (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    pub invite_id: String,
    pub role: Role,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: i64,
    pub created_at: i64,
}

/// What an invite token leads to, for the invite page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteCheck {
    Valid {
        invite_id: String,
        workspace_id: String,
        workspace_name: String,
        role: Role,
        invited_by: String,
    },
    Gone,
}

/// A new account: everything sign-up writes in one transaction.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub password_hash: &'a str,
    /// Whether this must be the first account (the page's first sign-up): then it fails with
    /// [`AccountsError::NotFirst`] if another account was made meanwhile. The first account,
    /// however made, is the admin and adopts `adopt`.
    pub must_be_first: bool,
    /// An invite's digest that allowed the sign-up: it is claimed (one use).
    pub invite: Option<&'a str>,
    /// The account's own workspace.
    pub workspace_id: &'a str,
    pub workspace_name: &'a str,
    /// Workspaces of the log without an owner, given to this (first) account.
    pub adopt: &'a [String],
    pub now: i64,
}

/// A new session (the digest of its secret) to record.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub digest: &'a str,
    pub session_id: &'a str,
    pub user_agent: &'a str,
}

pub struct Accounts {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Quota turns: one process holds accounts.db (its data dir's lock), so they are in memory.
    turns: crate::Turns,
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn role_of(text: &str) -> Result<Role, AccountsError> {
    text.parse()
        .map_err(|_| AccountsError::Corrupt(format!("role {text:?}")))
}

impl Accounts {
    /// Opens (creating if needed) accounts.db at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AccountsError> {
        let path = path.as_ref();
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for i in 0..CONNECTIONS {
            let conn = tandem_store::open(path, tandem_store::Durability::Full)?;
            if i == 0 {
                conn.execute_batch(include_str!("sql/accounts.sql"))?;
            }
            conns.push(Mutex::new(conn));
        }
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
            turns: crate::Turns::default(),
        })
    }

    /// Runs `f` on a free connection (or waits for one).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, AccountsError>,
    ) -> Result<T, AccountsError> {
        for conn in &self.conns {
            if let Ok(mut conn) = conn.try_lock() {
                return f(&mut conn);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut conn = self.conns[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    /// Runs `f` in one write transaction (taken at once: no upgrade deadlock between writers).
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, AccountsError>,
    ) -> Result<T, AccountsError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

impl AccountStore for Accounts {
    /// A number that grows whenever access was taken away (here or by the command line while
    /// the server runs): the socket watcher re-checks open sockets when it moves.
    fn revocations(&self) -> Result<i64, AccountsError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT count FROM revocations WHERE id = 1")?
                    .query_row([], |r| r.get(0))?,
            )
        })
    }

    /// Deletes sessions idle past their life and expired tokens; returns how many.
    fn sweep(&self, now: i64) -> Result<usize, AccountsError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM sessions WHERE last_used_at <= ?1",
                [now - SESSION_IDLE_MS],
            )? + tx.execute(
                "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                [now],
            )?;
            // Invites ended (revoked or expired) a month ago, with their claims.
            let month_ago = now - 30 * 24 * 60 * 60 * 1_000;
            tx.execute(
                "DELETE FROM invite_claims WHERE invite_id IN (SELECT invite_id FROM invites \
                 WHERE coalesce(revoked_at, expires_at) <= ?1 AND expires_at <= ?2)",
                params![month_ago, now],
            )?;
            let invites = tx.execute(
                "DELETE FROM invites WHERE coalesce(revoked_at, expires_at) <= ?1 AND expires_at <= ?2",
                params![month_ago, now],
            )?;
            Ok(n + invites)
        })
    }

    // ---- users ----

    /// How many accounts were ever made (deleted ones too).
    fn user_count(&self) -> Result<i64, AccountsError> {
        self.with(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?))
    }

    /// Makes an account with its own workspace (and, for the first account, the log's
    /// workspaces without an owner), claiming the invite that allowed it.
    fn create_account(&self, new: &NewAccount<'_>) -> Result<UserRecord, AccountsError> {
        crate::names::username(new.username)?;
        self.write(|tx| {
            let first: bool =
                tx.query_row("SELECT count(*) = 0 FROM users", [], |r| r.get(0))?;
            if new.must_be_first && !first {
                return Err(AccountsError::NotFirst);
            }
            // Checked inside the transaction: uses left, not expired, not revoked.
            let invite = match new.invite {
                Some(digest) => {
                    Some(usable_invite(tx, digest, new.now)?.ok_or(AccountsError::InviteGone)?)
                }
                None => None,
            };
            tx.execute(
                "INSERT INTO users (user_id, username, password_hash, is_admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![new.user_id, new.username, new.password_hash, first, new.now],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AccountsError::UsernameTaken
                } else {
                    e.into()
                }
            })?;
            if let Some(invite_id) = invite {
                tx.execute(
                    "INSERT INTO invite_claims (invite_id, user_id, claimed_at) VALUES (?1, ?2, ?3)",
                    params![invite_id, new.user_id, new.now],
                )?;
            }
            insert_workspace(tx, new.workspace_id, new.workspace_name, new.user_id, new.now)?;
            tx.execute(
                "UPDATE workspaces SET needs_inbox = 1 WHERE workspace_id = ?1",
                [new.workspace_id],
            )?;
            if first {
                for ws in new.adopt {
                    let exists: bool = tx.query_row(
                        "SELECT count(*) > 0 FROM workspaces WHERE workspace_id = ?1",
                        [ws],
                        |r| r.get(0),
                    )?;
                    if !exists {
                        insert_workspace(tx, ws, "Workspace", new.user_id, new.now)?;
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

    /// The account's workspaces still waiting for their "Inbox" list.
    fn inbox_pending(&self, user_id: &str) -> Result<Vec<String>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT workspace_id FROM workspaces WHERE created_by = ?1 AND needs_inbox = 1 AND deleted_at IS NULL",
            )?;
            let rows = stmt.query_map([user_id], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Notes that the workspace's "Inbox" list is in the log.
    fn inbox_written(&self, workspace_id: &str) -> Result<(), AccountsError> {
        self.with(|c| {
            c.execute(
                "UPDATE workspaces SET needs_inbox = 0 WHERE workspace_id = ?1",
                [workspace_id],
            )?;
            Ok(())
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, AccountsError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT user_id, username, password_hash, is_admin, disabled, deleted, created_at \
                 FROM users WHERE username = ?1",
                [username],
                read_user,
            )
            .optional()?)
        })
    }

    fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, AccountsError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT user_id, username, password_hash, is_admin, disabled, deleted, created_at \
                 FROM users WHERE user_id = ?1",
                [user_id],
                read_user,
            )
            .optional()?)
        })
    }

    fn users(&self) -> Result<Vec<UserRecord>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT user_id, username, password_hash, is_admin, disabled, deleted, created_at \
                 FROM users ORDER BY created_at, username",
            )?;
            let rows = stmt.query_map([], read_user)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Every account id (deleted ones too), for `server verify`.
    fn user_ids(&self) -> Result<HashSet<String>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT user_id FROM users")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<HashSet<_>, _>>()?)
        })
    }

    /// Names of accounts (deleted ones keep theirs), for showing who made an event.
    fn usernames(&self, ids: &[String]) -> Result<Vec<User>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT username FROM users WHERE user_id = ?1")?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(username) = stmt.query_row([id], |r| r.get(0)).optional()? {
                    out.push(User {
                        user_id: id.clone(),
                        username,
                    });
                }
            }
            Ok(out)
        })
    }

    /// A new password: every session and token of the account ends.
    fn set_password(&self, user_id: &str, hash: &str) -> Result<(), AccountsError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE user_id = ?1 AND deleted = 0",
                params![user_id, hash],
            )?;
            if n == 0 {
                return Err(AccountsError::NoSuchUser(user_id.to_string()));
            }
            end_credentials(tx, user_id)?;
            Ok(())
        })
    }

    /// A new password, keeping one session (the one that changed it).
    fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
    ) -> Result<(), AccountsError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE user_id = ?1",
                params![user_id, hash],
            )?;
            tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND session_id IS NOT ?2",
                params![user_id, keep_session],
            )?;
            tx.execute("DELETE FROM tokens WHERE user_id = ?1", [user_id])?;
            revoked(tx)
        })
    }

    /// Disables (or enables) an account by name; disabling ends its sessions and tokens.
    fn set_disabled(&self, username: &str, disabled: bool) -> Result<User, AccountsError> {
        self.write(|tx| {
            let user = tx
                .query_row(
                    "SELECT user_id, username FROM users WHERE username = ?1 AND deleted = 0",
                    [username],
                    |r| {
                        Ok(User {
                            user_id: r.get(0)?,
                            username: r.get(1)?,
                        })
                    },
                )
                .optional()?
                .ok_or_else(|| AccountsError::NoSuchUser(username.to_string()))?;
            tx.execute(
                "UPDATE users SET disabled = ?2 WHERE user_id = ?1",
                params![user.user_id, disabled],
            )?;
            if disabled {
                end_credentials(tx, &user.user_id)?;
            }
            revoked(tx)?;
            Ok(user)
        })
    }

    /// Deletes an account: it leaves every workspace (a workspace it alone is in is deleted;
    /// one where it is the last owner beside others refuses with LAST_OWNER), its sessions and
    /// tokens end, and its row stays with its name (History shows it; nobody takes it over).
    fn delete_user(&self, user_id: &str, now: i64) -> Result<(), AccountsError> {
        self.write(|tx| {
            let workspaces: Vec<(String, String)> = {
                let mut stmt =
                    tx.prepare("SELECT workspace_id, role FROM members WHERE user_id = ?1")?;
                let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            for (ws, role) in &workspaces {
                let others: i64 = tx.query_row(
                    "SELECT count(*) FROM members WHERE workspace_id = ?1 AND user_id != ?2",
                    params![ws, user_id],
                    |r| r.get(0),
                )?;
                if others == 0 {
                    delete_workspace_rows(tx, ws, now)?;
                } else if role == "owner" && owners(tx, ws)? == 1 {
                    return Err(AccountsError::LastOwner);
                }
            }
            tx.execute("DELETE FROM members WHERE user_id = ?1", [user_id])?;
            revoke_invites_by(tx, user_id, None)?;
            end_credentials(tx, user_id)?;
            tx.execute(
                "UPDATE users SET deleted = 1, password_hash = '!' WHERE user_id = ?1",
                [user_id],
            )?;
            Ok(())
        })
    }

    // ---- sessions ----

    /// Records a new session. `replaces`: the digest of a session cookie the request carried,
    /// which ends now (a signed-in person signing in again gets a fresh id: no fixation).
    fn create_session(
        &self,
        user_id: &str,
        session: &NewSession<'_>,
        replaces: Option<&str>,
        now: i64,
    ) -> Result<(), AccountsError> {
        self.write(|tx| {
            if let Some(old) = replaces {
                if tx.execute("DELETE FROM sessions WHERE session_hash = ?1", [old])? > 0 {
                    revoked(tx)?;
                }
            }
            let agent: String = session.user_agent.chars().take(MAX_USER_AGENT_CHARS).collect();
            tx.execute(
                "INSERT INTO sessions (session_hash, session_id, user_id, created_at, last_used_at, user_agent) \
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![session.digest, session.session_id, user_id, now, agent],
            )?;
            // An account keeps its newest sessions only (rule 22): signing in again and again
            // cannot grow the table without bound.
            let dropped = tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND session_hash NOT IN \
                 (SELECT session_hash FROM sessions WHERE user_id = ?1 ORDER BY last_used_at DESC, created_at DESC LIMIT ?2)",
                params![user_id, MAX_SESSIONS_PER_USER],
            )?;
            if dropped > 0 {
                revoked(tx)?;
            }
            Ok(())
        })
    }

    /// The account behind a session cookie's digest: none when unknown, idle for 30 days, or
    /// the account is disabled or deleted. Notes the use (at most once a minute).
    /// The flag says whether the use was written now (the caller sends the cookie again, so
    /// it lives 30 days from the last use too).
    fn session(&self, digest: &str, now: i64) -> Result<Option<(Principal, bool)>, AccountsError> {
        let found = self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT u.user_id, u.username, u.is_admin, s.session_id, s.last_used_at \
                 FROM sessions s JOIN users u ON u.user_id = s.user_id \
                 WHERE s.session_hash = ?1 AND u.disabled = 0 AND u.deleted = 0 AND s.last_used_at > ?2",
            )?
            .query_row(params![digest, now - SESSION_IDLE_MS], |r| {
                Ok((
                    Principal {
                        user: User {
                            user_id: r.get(0)?,
                            username: r.get(1)?,
                        },
                        is_admin: r.get(2)?,
                        credential: Credential::Session {
                            session_id: r.get(3)?,
                        },
                    },
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?)
        })?;
        let Some((principal, last_used)) = found else {
            return Ok(None);
        };
        let touch = now - last_used >= TOUCH_EVERY_MS;
        if touch {
            self.with(|c| {
                c.prepare_cached("UPDATE sessions SET last_used_at = ?2 WHERE session_hash = ?1")?
                    .execute(params![digest, now])?;
                Ok(())
            })?;
        }
        Ok(Some((principal, touch)))
    }

    /// Ends the session with this digest (sign-out). Returns whether one ended.
    fn end_session(&self, digest: &str) -> Result<bool, AccountsError> {
        self.write(|tx| {
            let ended = tx.execute("DELETE FROM sessions WHERE session_hash = ?1", [digest])? > 0;
            if ended {
                revoked(tx)?;
            }
            Ok(ended)
        })
    }

    /// Ends one of the account's sessions by its public id.
    fn end_session_by_id(&self, user_id: &str, session_id: &str) -> Result<bool, AccountsError> {
        self.write(|tx| {
            let ended = tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND session_id = ?2",
                params![user_id, session_id],
            )? > 0;
            if ended {
                revoked(tx)?;
            }
            Ok(ended)
        })
    }

    /// Ends every session of the account (sign out everywhere).
    fn end_sessions(&self, user_id: &str) -> Result<usize, AccountsError> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
            if n > 0 {
                revoked(tx)?;
            }
            Ok(n)
        })
    }

    fn sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionInfo>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT session_id, created_at, last_used_at, user_agent FROM sessions \
                 WHERE user_id = ?1 AND last_used_at > ?2 ORDER BY last_used_at DESC",
            )?;
            let rows = stmt.query_map(params![user_id, now - SESSION_IDLE_MS], |r| {
                Ok(SessionInfo {
                    session_id: r.get(0)?,
                    created_at: r.get(1)?,
                    last_used_at: r.get(2)?,
                    user_agent: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Ends every session and token of every account (`server restore`).
    fn end_all_credentials(&self) -> Result<(), AccountsError> {
        self.write(|tx| {
            tx.execute("DELETE FROM sessions", [])?;
            tx.execute("DELETE FROM tokens", [])?;
            revoked(tx)
        })
    }

    // ---- tokens ----

    fn create_token(
        &self,
        user_id: &str,
        token_id: &str,
        digest: &str,
        name: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(), AccountsError> {
        let name = crate::names::display_name(name, crate::names::MAX_TOKEN_NAME_CHARS)?;
        self.write(|tx| {
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM tokens WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )?;
            if n >= MAX_TOKENS_PER_USER {
                return Err(AccountsError::TooMany(format!(
                    "an account has at most {MAX_TOKENS_PER_USER} tokens: delete one first"
                )));
            }
            tx.execute(
                "INSERT INTO tokens (token_id, token_hash, user_id, name, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token_id, digest, user_id, name, now, expires_at],
            )?;
            Ok(())
        })
    }

    /// The account behind an API token's digest (none when unknown, expired, or the account
    /// is disabled or deleted).
    fn token(&self, digest: &str, now: i64) -> Result<Option<Principal>, AccountsError> {
        let found = self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT u.user_id, u.username, u.is_admin, t.token_id, t.last_used_at \
                 FROM tokens t JOIN users u ON u.user_id = t.user_id \
                 WHERE t.token_hash = ?1 AND u.disabled = 0 AND u.deleted = 0 \
                 AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            )?
            .query_row(params![digest, now], |r| {
                Ok((
                    Principal {
                        user: User {
                            user_id: r.get(0)?,
                            username: r.get(1)?,
                        },
                        is_admin: r.get(2)?,
                        credential: Credential::Token {
                            token_id: r.get(3)?,
                        },
                    },
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()?)
        })?;
        let Some((principal, last_used)) = found else {
            return Ok(None);
        };
        if last_used.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
            self.with(|c| {
                c.prepare_cached("UPDATE tokens SET last_used_at = ?2 WHERE token_hash = ?1")?
                    .execute(params![digest, now])?;
                Ok(())
            })?;
        }
        Ok(Some(principal))
    }

    fn tokens(&self, user_id: &str) -> Result<Vec<TokenInfo>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT token_id, name, created_at, expires_at, last_used_at FROM tokens \
                 WHERE user_id = ?1 ORDER BY created_at",
            )?;
            let rows = stmt.query_map([user_id], |r| {
                Ok(TokenInfo {
                    token_id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    last_used_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Deletes one of the account's tokens; false when it has none of that id.
    fn delete_token(&self, user_id: &str, token_id: &str) -> Result<bool, AccountsError> {
        self.write(|tx| {
            let deleted = tx.execute(
                "DELETE FROM tokens WHERE user_id = ?1 AND token_id = ?2",
                params![user_id, token_id],
            )? > 0;
            if deleted {
                revoked(tx)?;
            }
            Ok(deleted)
        })
    }

    /// Whether a principal's credential still holds (sockets are re-checked with it).
    fn still_valid(&self, principal: &Principal, now: i64) -> Result<bool, AccountsError> {
        self.with(|c| {
            let ok: bool = match &principal.credential {
                Credential::Session { session_id } => c.query_row(
                    "SELECT count(*) > 0 FROM sessions s JOIN users u ON u.user_id = s.user_id \
                     WHERE s.session_id = ?1 AND u.disabled = 0 AND u.deleted = 0 AND s.last_used_at > ?2",
                    params![session_id, now - SESSION_IDLE_MS],
                    |r| r.get(0),
                )?,
                Credential::Token { token_id } => c.query_row(
                    "SELECT count(*) > 0 FROM tokens t JOIN users u ON u.user_id = t.user_id \
                     WHERE t.token_id = ?1 AND u.disabled = 0 AND u.deleted = 0 \
                     AND (t.expires_at IS NULL OR t.expires_at > ?2)",
                    params![token_id, now],
                    |r| r.get(0),
                )?,
            };
            Ok(ok)
        })
    }

    // ---- workspaces ----

    /// Every workspace id with a row (deleted ones too), for `server verify`.
    fn workspace_ids(&self) -> Result<HashSet<String>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT workspace_id FROM workspaces")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<HashSet<_>, _>>()?)
        })
    }

    /// Makes a workspace owned by `user_id`. The same call again by its owner is `Ok(false)`
    /// (nothing new); an id that is anyone else's — or a workspace of the log nobody owns — is
    /// FORBIDDEN.
    fn create_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        name: &str,
        in_log: bool,
        now: i64,
    ) -> Result<(WorkspaceInfo, bool), AccountsError> {
        let name = crate::names::display_name(name, crate::names::MAX_WORKSPACE_NAME_CHARS)?;
        self.write(|tx| {
            let existing: Option<(String, Option<i64>)> = tx
                .query_row(
                    "SELECT name, deleted_at FROM workspaces WHERE workspace_id = ?1",
                    [workspace_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((existing_name, deleted)) = existing {
                let role = role_in(tx, user_id, workspace_id)?;
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
            let made: i64 = tx.query_row(
                "SELECT count(*) FROM workspaces WHERE created_by = ?1",
                [user_id],
                |r| r.get(0),
            )?;
            if made >= MAX_WORKSPACES_PER_USER {
                return Err(AccountsError::TooMany(format!(
                    "an account makes at most {MAX_WORKSPACES_PER_USER} workspaces"
                )));
            }
            insert_workspace(tx, workspace_id, &name, user_id, now)?;
            Ok((
                WorkspaceInfo {
                    workspace_id: workspace_id.to_string(),
                    name,
                    role: Role::Owner,
                },
                true,
            ))
        })
    }

    /// The workspaces an account is a member of, by name.
    fn workspaces_of(&self, user_id: &str) -> Result<Vec<WorkspaceInfo>, AccountsError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT w.workspace_id, w.name, m.role FROM members m \
                 JOIN workspaces w ON w.workspace_id = m.workspace_id \
                 WHERE m.user_id = ?1 AND w.deleted_at IS NULL ORDER BY m.joined_at, w.name",
            )?;
            with_roles(&mut stmt, [user_id], |workspace_id, name, role| {
                WorkspaceInfo {
                    workspace_id,
                    name,
                    role,
                }
            })
        })
    }

    /// The account's role in a live workspace; FORBIDDEN (the same for an absent, deleted or
    /// foreign workspace) when it has none.
    fn role(&self, user_id: &str, workspace_id: &str) -> Result<Role, AccountsError> {
        self.with(|c| role_in(c, user_id, workspace_id))?
            .ok_or_else(forbidden)
    }

    /// The workspace's name, for a member.
    fn workspace(&self, user_id: &str, workspace_id: &str) -> Result<WorkspaceInfo, AccountsError> {
        self.with(|c| {
            let found: Option<(String, String)> = c
                .prepare_cached(
                    "SELECT w.name, m.role FROM members m JOIN workspaces w ON w.workspace_id = m.workspace_id \
                     WHERE m.user_id = ?1 AND m.workspace_id = ?2 AND w.deleted_at IS NULL",
                )?
                .query_row(params![user_id, workspace_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (name, role) = found.ok_or_else(forbidden)?;
            Ok(WorkspaceInfo {
                workspace_id: workspace_id.to_string(),
                name,
                role: role_of(&role)?,
            })
        })
    }

    fn rename_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        name: &str,
    ) -> Result<WorkspaceInfo, AccountsError> {
        let name = crate::names::display_name(name, crate::names::MAX_WORKSPACE_NAME_CHARS)?;
        self.write(|tx| {
            owner_only(tx, user_id, workspace_id)?;
            tx.execute(
                "UPDATE workspaces SET name = ?2 WHERE workspace_id = ?1",
                params![workspace_id, name],
            )?;
            Ok(WorkspaceInfo {
                workspace_id: workspace_id.to_string(),
                name,
                role: Role::Owner,
            })
        })
    }

    /// Deletes a workspace (its owner): every membership and invite ends; its events stay in
    /// the log (rule 4) and nobody reaches them. Returns the former members.
    fn delete_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<String>, AccountsError> {
        self.write(|tx| {
            owner_only(tx, user_id, workspace_id)?;
            let members = member_ids(tx, workspace_id)?;
            delete_workspace_rows(tx, workspace_id, now)?;
            Ok(members)
        })
    }

    // ---- members ----

    /// A workspace's members (for any member).
    fn members(&self, user_id: &str, workspace_id: &str) -> Result<Vec<Member>, AccountsError> {
        self.with(|c| {
            role_in(c, user_id, workspace_id)?.ok_or_else(forbidden)?;
            let mut stmt = c.prepare(
                "SELECT m.user_id, u.username, m.role FROM members m JOIN users u ON u.user_id = m.user_id \
                 WHERE m.workspace_id = ?1 ORDER BY m.joined_at, u.username",
            )?;
            with_roles(&mut stmt, [workspace_id], |user_id, username, role| Member {
                user_id,
                username,
                role,
            })
        })
    }

    /// Changes a member's role (owners only). The last owner cannot stop being one.
    fn set_role(
        &self,
        actor: &str,
        workspace_id: &str,
        target: &str,
        role: Role,
    ) -> Result<(), AccountsError> {
        self.write(|tx| {
            owner_only(tx, actor, workspace_id)?;
            let current = role_in(tx, target, workspace_id)?.ok_or(AccountsError::NotFound)?;
            if current == Role::Owner && role != Role::Owner && owners(tx, workspace_id)? == 1 {
                return Err(AccountsError::LastOwner);
            }
            tx.execute(
                "UPDATE members SET role = ?3 WHERE workspace_id = ?1 AND user_id = ?2",
                params![workspace_id, target, role.as_str()],
            )?;
            if current == Role::Owner && role != Role::Owner {
                revoke_invites_by(tx, target, Some(workspace_id))?;
            }
            Ok(())
        })
    }

    /// Removes a member (an owner removing anyone, or anyone leaving). The last owner cannot
    /// leave or be removed.
    fn remove_member(
        &self,
        actor: &str,
        workspace_id: &str,
        target: &str,
    ) -> Result<(), AccountsError> {
        self.write(|tx| {
            let actor_role = role_in(tx, actor, workspace_id)?.ok_or_else(forbidden)?;
            if actor != target && actor_role != Role::Owner {
                return Err(AccountsError::Forbidden(
                    "only an owner removes other members".into(),
                ));
            }
            let role = role_in(tx, target, workspace_id)?.ok_or(AccountsError::NotFound)?;
            if role == Role::Owner && owners(tx, workspace_id)? == 1 {
                return Err(AccountsError::LastOwner);
            }
            tx.execute(
                "DELETE FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                params![workspace_id, target],
            )?;
            revoke_invites_by(tx, target, Some(workspace_id))?;
            revoked(tx)
        })
    }

    // ---- invites ----

    #[allow(clippy::too_many_arguments)]
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
        self.write(|tx| {
            owner_only(tx, actor, workspace_id)?;
            let pending: i64 = tx.query_row(
                "SELECT count(*) FROM invites WHERE workspace_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                params![workspace_id, now],
                |r| r.get(0),
            )?;
            if pending >= MAX_PENDING_INVITES {
                return Err(AccountsError::TooMany(format!(
                    "a workspace has at most {MAX_PENDING_INVITES} pending invites: revoke one first"
                )));
            }
            tx.execute(
                "INSERT INTO invites (invite_id, token_hash, workspace_id, role, max_uses, expires_at, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![invite_id, digest, workspace_id, role.as_str(), max_uses, expires_at, actor, now],
            )?;
            Ok(())
        })
    }

    /// A workspace's pending invites (owners only): not revoked, not expired, uses left.
    fn invites(
        &self,
        actor: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<Invite>, AccountsError> {
        self.with(|c| {
            owner_only(c, actor, workspace_id)?;
            let mut stmt = c.prepare(
                "SELECT i.invite_id, i.role, i.max_uses, \
                 (SELECT count(*) FROM invite_claims c WHERE c.invite_id = i.invite_id) AS uses, \
                 i.expires_at, i.created_at FROM invites i \
                 WHERE i.workspace_id = ?1 AND i.revoked_at IS NULL AND i.expires_at > ?2 \
                 AND uses < i.max_uses ORDER BY i.created_at",
            )?;
            let rows = stmt.query_map(params![workspace_id, now], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (invite_id, role, max_uses, uses, expires_at, created_at) = row?;
                out.push(Invite {
                    invite_id,
                    role: role_of(&role)?,
                    max_uses,
                    uses,
                    expires_at,
                    created_at,
                });
            }
            Ok(out)
        })
    }

    /// Revokes an invite of the workspace by its id or its token's digest (owners only).
    fn revoke_invite(
        &self,
        actor: &str,
        workspace_id: &str,
        id_or_digest: &str,
        now: i64,
    ) -> Result<(), AccountsError> {
        self.write(|tx| {
            owner_only(tx, actor, workspace_id)?;
            let n = tx.execute(
                "UPDATE invites SET revoked_at = coalesce(revoked_at, ?3) \
                 WHERE workspace_id = ?1 AND (invite_id = ?2 OR token_hash = ?2)",
                params![workspace_id, id_or_digest, now],
            )?;
            if n == 0 {
                return Err(AccountsError::NotFound);
            }
            Ok(())
        })
    }

    /// What an invite token leads to (the invite page; sign-up's policy check).
    fn check_invite(&self, digest: &str, now: i64) -> Result<InviteCheck, AccountsError> {
        self.with(|c| {
            let Some(invite_id) = usable_invite(c, digest, now)? else {
                return Ok(InviteCheck::Gone);
            };
            let (workspace_id, workspace_name, role, invited_by): (String, String, String, String) =
                c.query_row(
                    "SELECT i.workspace_id, w.name, i.role, u.username FROM invites i \
                 JOIN workspaces w ON w.workspace_id = i.workspace_id \
                 JOIN users u ON u.user_id = i.created_by WHERE i.invite_id = ?1",
                    [&invite_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
            Ok(InviteCheck::Valid {
                invite_id,
                workspace_id,
                workspace_name,
                role: role_of(&role)?,
                invited_by,
            })
        })
    }

    /// Joins the invite's workspace. A member already keeps their role and uses nothing; the
    /// person who signed up with this invite joins on the use they already claimed.
    fn accept_invite(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<(String, Role), AccountsError> {
        self.write(|tx| {
            // Live only: not revoked, not expired, its workspace not deleted.
            let found: Option<(String, String, String, i64)> = tx
                .query_row(
                    "SELECT i.invite_id, i.workspace_id, i.role, i.max_uses \
                     FROM invites i JOIN workspaces w ON w.workspace_id = i.workspace_id \
                     WHERE i.token_hash = ?1 AND i.revoked_at IS NULL AND w.deleted_at IS NULL \
                     AND i.expires_at > ?2 \
                     AND EXISTS (SELECT 1 FROM members m WHERE m.workspace_id = i.workspace_id \
                                 AND m.user_id = i.created_by AND m.role = 'owner')",
                    params![digest, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((invite_id, ws, role, max_uses)) = found else {
                return Err(AccountsError::InviteGone);
            };
            if let Some(current) = role_in(tx, user_id, &ws)? {
                return Ok((ws, current));
            }
            let claim: Option<bool> = tx
                .query_row(
                    "SELECT joined FROM invite_claims WHERE invite_id = ?1 AND user_id = ?2",
                    params![invite_id, user_id],
                    |r| r.get(0),
                )
                .optional()?;
            match claim {
                // Signed up with it: joins on that use.
                Some(false) => {
                    tx.execute(
                        "UPDATE invite_claims SET joined = 1 WHERE invite_id = ?1 AND user_id = ?2",
                        params![invite_id, user_id],
                    )?;
                }
                // Joined with it before and was removed since: it does not let them back.
                Some(true) => return Err(AccountsError::InviteGone),
                None => {
                let uses: i64 = tx.query_row(
                    "SELECT count(*) FROM invite_claims WHERE invite_id = ?1",
                    [&invite_id],
                    |r| r.get(0),
                )?;
                if uses >= max_uses {
                    return Err(AccountsError::InviteGone);
                }
                    tx.execute(
                        "INSERT INTO invite_claims (invite_id, user_id, claimed_at, joined) VALUES (?1, ?2, ?3, 1)",
                        params![invite_id, user_id, now],
                    )?;
                }
            }
            tx.execute(
                "INSERT INTO members (workspace_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
                params![ws, user_id, role, now],
            )?;
            Ok((ws, role_of(&role)?))
        })
    }

    // ---- devices and usage ----

    /// Binds a device id to the account that first syncs with it; FORBIDDEN when it is
    /// another account's.
    fn bind_device(&self, device_id: &str, user_id: &str, now: i64) -> Result<(), AccountsError> {
        let owner: Option<String> = self.with(|c| {
            Ok(
                c.prepare_cached("SELECT user_id FROM devices WHERE device_id = ?1")?
                    .query_row([device_id], |r| r.get(0))
                    .optional()?,
            )
        })?;
        match owner {
            Some(owner) if owner == user_id => Ok(()),
            Some(_) => Err(AccountsError::Forbidden(format!(
                "device {device_id} belongs to another account; a device id is minted per account"
            ))),
            None => self.write(|tx| {
                tx.execute(
                    "INSERT INTO devices (device_id, user_id, bound_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (device_id) DO NOTHING",
                    params![device_id, user_id, now],
                )?;
                let owner: String = tx.query_row(
                    "SELECT user_id FROM devices WHERE device_id = ?1",
                    [device_id],
                    |r| r.get(0),
                )?;
                if owner == user_id {
                    Ok(())
                } else {
                    Err(AccountsError::Forbidden(format!(
                        "device {device_id} belongs to another account"
                    )))
                }
            }),
        }
    }

    /// The account a device id is bound to, if any.
    fn device_owner(&self, device_id: &str) -> Result<Option<String>, AccountsError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT user_id FROM devices WHERE device_id = ?1")?
                    .query_row([device_id], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn quota_turn(&self, user_id: &str) -> Result<crate::QuotaTurn, AccountsError> {
        Ok(Box::new(self.turns.take(user_id, crate::store::TURN_WAIT)?))
    }

    /// Events stored today (`day`: days since the epoch, UTC) and bytes stored in all.
    fn usage(&self, user_id: &str, day: i64) -> Result<(i64, i64), AccountsError> {
        self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(CASE WHEN day = ?2 THEN events END), 0), coalesce(sum(bytes), 0) \
                 FROM usage WHERE user_id = ?1",
            )?
            .query_row(params![user_id, day], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
    }

    fn add_usage(
        &self,
        user_id: &str,
        day: i64,
        events: i64,
        bytes: i64,
    ) -> Result<(), AccountsError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO usage (user_id, day, events, bytes) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (user_id, day) DO UPDATE SET events = events + ?3, bytes = bytes + ?4",
            )?
            .execute(params![user_id, day, events, bytes])?;
            Ok(())
        })
    }

    /// Gives the log's workspaces that have no row to `owner` (the first account; `import
    /// --owner`). Returns how many it adopted.
    fn adopt(&self, owner: &str, workspaces: &[String], now: i64) -> Result<usize, AccountsError> {
        self.write(|tx| {
            let mut adopted = 0;
            for ws in workspaces {
                let exists: bool = tx.query_row(
                    "SELECT count(*) > 0 FROM workspaces WHERE workspace_id = ?1",
                    [ws],
                    |r| r.get(0),
                )?;
                if !exists {
                    insert_workspace(tx, ws, "Workspace", owner, now)?;
                    adopted += 1;
                }
            }
            Ok(adopted)
        })
    }
}

/// Rows of (id, name, role) made into `T`s.
fn with_roles<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    make: impl Fn(String, String, Role) -> T,
) -> Result<Vec<T>, AccountsError> {
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, role) = row?;
        out.push(make(id, name, role_of(&role)?));
    }
    Ok(out)
}

fn read_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            user_id: r.get(0)?,
            username: r.get(1)?,
        },
        password_hash: r.get(2)?,
        is_admin: r.get(3)?,
        disabled: r.get(4)?,
        deleted: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn insert_workspace(
    tx: &Connection,
    workspace_id: &str,
    name: &str,
    owner: &str,
    now: i64,
) -> Result<(), AccountsError> {
    tx.execute(
        "INSERT INTO workspaces (workspace_id, name, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![workspace_id, name, owner, now],
    )?;
    tx.execute(
        "INSERT INTO members (workspace_id, user_id, role, joined_at) VALUES (?1, ?2, 'owner', ?3)",
        params![workspace_id, owner, now],
    )?;
    Ok(())
}

fn role_in(
    c: &Connection,
    user_id: &str,
    workspace_id: &str,
) -> Result<Option<Role>, AccountsError> {
    let role: Option<String> = c
        .prepare_cached(
            "SELECT m.role FROM members m JOIN workspaces w ON w.workspace_id = m.workspace_id \
             JOIN users u ON u.user_id = m.user_id \
             WHERE m.user_id = ?1 AND m.workspace_id = ?2 AND w.deleted_at IS NULL \
             AND u.disabled = 0 AND u.deleted = 0",
        )?
        .query_row(params![user_id, workspace_id], |r| r.get(0))
        .optional()?;
    role.map(|r| role_of(&r)).transpose()
}

fn owner_only(c: &Connection, user_id: &str, workspace_id: &str) -> Result<(), AccountsError> {
    match role_in(c, user_id, workspace_id)? {
        Some(Role::Owner) => Ok(()),
        Some(_) => Err(AccountsError::Forbidden(
            "only an owner of this workspace may do that".into(),
        )),
        None => Err(forbidden()),
    }
}

fn owners(c: &Connection, workspace_id: &str) -> Result<i64, AccountsError> {
    Ok(c.query_row(
        "SELECT count(*) FROM members WHERE workspace_id = ?1 AND role = 'owner'",
        [workspace_id],
        |r| r.get(0),
    )?)
}

fn member_ids(c: &Connection, workspace_id: &str) -> Result<Vec<String>, AccountsError> {
    let mut stmt = c.prepare("SELECT user_id FROM members WHERE workspace_id = ?1")?;
    let rows = stmt.query_map([workspace_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn delete_workspace_rows(
    c: &Connection,
    workspace_id: &str,
    now: i64,
) -> Result<(), AccountsError> {
    c.execute(
        "UPDATE workspaces SET deleted_at = coalesce(deleted_at, ?2) WHERE workspace_id = ?1",
        params![workspace_id, now],
    )?;
    c.execute(
        "DELETE FROM members WHERE workspace_id = ?1",
        [workspace_id],
    )?;
    c.execute(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, ?2) WHERE workspace_id = ?1",
        params![workspace_id, now],
    )?;
    revoked(c)
}

/// Revokes the invites `user_id` made in `workspace_id` (every workspace: `None`): an owner who
/// is removed, demoted or deleted cannot come back on an invite of their own.
fn revoke_invites_by(
    c: &Connection,
    user_id: &str,
    workspace_id: Option<&str>,
) -> Result<(), AccountsError> {
    // Marked revoked as of when they were made (no clock here; only "revoked" matters).
    c.execute(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, created_at) \
         WHERE created_by = ?1 AND (?2 IS NULL OR workspace_id = ?2)",
        params![user_id, workspace_id],
    )?;
    Ok(())
}

fn end_credentials(c: &Connection, user_id: &str) -> Result<(), AccountsError> {
    c.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    c.execute("DELETE FROM tokens WHERE user_id = ?1", [user_id])?;
    revoked(c)
}

/// Notes, in the caller's transaction, that access was taken away (sockets are re-checked).
fn revoked(c: &Connection) -> Result<(), AccountsError> {
    c.execute("UPDATE revocations SET count = count + 1 WHERE id = 1", [])?;
    Ok(())
}

/// The id of the invite with this digest if it can still be used by a new person.
fn usable_invite(c: &Connection, digest: &str, now: i64) -> Result<Option<String>, AccountsError> {
    Ok(c.prepare_cached(
        "SELECT i.invite_id FROM invites i JOIN workspaces w ON w.workspace_id = i.workspace_id \
         WHERE i.token_hash = ?1 AND i.revoked_at IS NULL AND i.expires_at > ?2 AND w.deleted_at IS NULL \
         AND EXISTS (SELECT 1 FROM members m WHERE m.workspace_id = i.workspace_id \
                     AND m.user_id = i.created_by AND m.role = 'owner') \
         AND (SELECT count(*) FROM invite_claims c WHERE c.invite_id = i.invite_id) < i.max_uses",
    )?
    .query_row(params![digest, now], |r| r.get(0))
    .optional()?)
}
