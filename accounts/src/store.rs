//! What the server asks of its accounts, whichever database holds them: [`crate::Accounts`]
//! (SQLite, accounts.db) or PostgreSQL's (crate `tandem-pg`). One contract, one test suite
//! ([`crate::suite`]) run against both. Every method is blocking: the server calls them on
//! blocking threads (`spawn_blocking`), never on the async runtime's own.

use std::collections::HashSet;

use crate::db::{
    AccountsError, Invite, InviteCheck, Member, NewAccount, NewSession, Principal, SessionInfo,
    TokenInfo, User, UserRecord, WorkspaceInfo,
};
use crate::names::Role;

/// An account's quota turn ([`AccountStore::quota_turn`]): given back when dropped.
pub type QuotaTurn = Box<dyn Send>;

/// How long a push waits for its account's quota turn.
pub const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub trait AccountStore: Send + Sync {
    /// A number that grows whenever access was taken away (here or by the command line while
    /// the server runs): the socket watcher re-checks open sockets when it moves.
    fn revocations(&self) -> Result<i64, AccountsError>;

    /// Deletes sessions idle past their life and expired tokens; returns how many.
    fn sweep(&self, now: i64) -> Result<usize, AccountsError>;

    /// How many accounts were ever made (deleted ones too).
    fn user_count(&self) -> Result<i64, AccountsError>;

    /// Makes an account with its own workspace (and, for the first account, the log's
    /// workspaces without an owner), claiming the invite that allowed it.
    fn create_account(&self, new: &NewAccount<'_>) -> Result<UserRecord, AccountsError>;

    /// The account's workspaces still waiting for their "Inbox" list.
    fn inbox_pending(&self, user_id: &str) -> Result<Vec<String>, AccountsError>;

    /// Notes that the workspace's "Inbox" list is in the log.
    fn inbox_written(&self, workspace_id: &str) -> Result<(), AccountsError>;

    fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, AccountsError>;

    fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, AccountsError>;

    fn users(&self) -> Result<Vec<UserRecord>, AccountsError>;

    /// Every account id (deleted ones too), for `server verify`.
    fn user_ids(&self) -> Result<HashSet<String>, AccountsError>;

    /// Names of accounts (deleted ones keep theirs), for showing who made an event.
    fn usernames(&self, ids: &[String]) -> Result<Vec<User>, AccountsError>;

    /// A new password: every session and token of the account ends.
    fn set_password(&self, user_id: &str, hash: &str) -> Result<(), AccountsError>;

    /// A new password, keeping one session (the one that changed it).
    fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
    ) -> Result<(), AccountsError>;

    /// Disables (or enables) an account by name; disabling ends its sessions and tokens.
    fn set_disabled(&self, username: &str, disabled: bool) -> Result<User, AccountsError>;

    /// Deletes an account: it leaves every workspace (a workspace it alone is in is deleted;
    /// one where it is the last owner beside others refuses with LAST_OWNER), its sessions and
    /// tokens end, and its row stays with its name (History shows it; nobody takes it over).
    fn delete_user(&self, user_id: &str, now: i64) -> Result<(), AccountsError>;

    /// Records a new session. `replaces`: the digest of a session cookie the request carried,
    /// which ends now (a signed-in person signing in again gets a fresh id: no fixation).
    fn create_session(
        &self,
        user_id: &str,
        session: &NewSession<'_>,
        replaces: Option<&str>,
        now: i64,
    ) -> Result<(), AccountsError>;

    /// The account behind a session cookie's digest: none when unknown, idle for 30 days, or
    /// the account is disabled or deleted. Notes the use (at most once a minute).
    /// The flag says whether the use was written now (the caller sends the cookie again, so
    /// it lives 30 days from the last use too).
    fn session(&self, digest: &str, now: i64) -> Result<Option<(Principal, bool)>, AccountsError>;

    /// Ends the session with this digest (sign-out). Returns whether one ended.
    fn end_session(&self, digest: &str) -> Result<bool, AccountsError>;

    /// Ends one of the account's sessions by its public id.
    fn end_session_by_id(&self, user_id: &str, session_id: &str) -> Result<bool, AccountsError>;

    /// Ends every session of the account (sign out everywhere).
    fn end_sessions(&self, user_id: &str) -> Result<usize, AccountsError>;

    fn sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionInfo>, AccountsError>;

    /// Ends every session and token of every account (`server restore`).
    fn end_all_credentials(&self) -> Result<(), AccountsError>;

    fn create_token(
        &self,
        user_id: &str,
        token_id: &str,
        digest: &str,
        name: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(), AccountsError>;

    /// The account behind an API token's digest (none when unknown, expired, or the account
    /// is disabled or deleted).
    fn token(&self, digest: &str, now: i64) -> Result<Option<Principal>, AccountsError>;

    fn tokens(&self, user_id: &str) -> Result<Vec<TokenInfo>, AccountsError>;

    /// Deletes one of the account's tokens; false when it has none of that id.
    fn delete_token(&self, user_id: &str, token_id: &str) -> Result<bool, AccountsError>;

    /// Whether a principal's credential still holds (sockets are re-checked with it).
    fn still_valid(&self, principal: &Principal, now: i64) -> Result<bool, AccountsError>;

    /// Every workspace id with a row (deleted ones too), for `server verify`.
    fn workspace_ids(&self) -> Result<HashSet<String>, AccountsError>;

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
    ) -> Result<(WorkspaceInfo, bool), AccountsError>;

    /// The workspaces an account is a member of, by name.
    fn workspaces_of(&self, user_id: &str) -> Result<Vec<WorkspaceInfo>, AccountsError>;

    /// The account's role in a live workspace; FORBIDDEN (the same for an absent, deleted or
    /// foreign workspace) when it has none.
    fn role(&self, user_id: &str, workspace_id: &str) -> Result<Role, AccountsError>;

    /// The workspace's name, for a member.
    fn workspace(&self, user_id: &str, workspace_id: &str) -> Result<WorkspaceInfo, AccountsError>;

    fn rename_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        name: &str,
    ) -> Result<WorkspaceInfo, AccountsError>;

    /// Deletes a workspace (its owner): every membership and invite ends; its events stay in
    /// the log (rule 4) and nobody reaches them. Returns the former members.
    fn delete_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<String>, AccountsError>;

    /// A workspace's members (for any member).
    fn members(&self, user_id: &str, workspace_id: &str) -> Result<Vec<Member>, AccountsError>;

    /// Changes a member's role (owners only). The last owner cannot stop being one.
    fn set_role(
        &self,
        actor: &str,
        workspace_id: &str,
        target: &str,
        role: Role,
    ) -> Result<(), AccountsError>;

    /// Removes a member (an owner removing anyone, or anyone leaving). The last owner cannot
    /// leave or be removed.
    fn remove_member(
        &self,
        actor: &str,
        workspace_id: &str,
        target: &str,
    ) -> Result<(), AccountsError>;

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
    ) -> Result<(), AccountsError>;

    /// A workspace's pending invites (owners only): not revoked, not expired, uses left.
    fn invites(
        &self,
        actor: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<Invite>, AccountsError>;

    /// Revokes an invite of the workspace by its id or its token's digest (owners only).
    fn revoke_invite(
        &self,
        actor: &str,
        workspace_id: &str,
        id_or_digest: &str,
        now: i64,
    ) -> Result<(), AccountsError>;

    /// What an invite token leads to (the invite page; sign-up's policy check).
    fn check_invite(&self, digest: &str, now: i64) -> Result<InviteCheck, AccountsError>;

    /// Joins the invite's workspace. A member already keeps their role and uses nothing; the
    /// person who signed up with this invite joins on the use they already claimed.
    fn accept_invite(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<(String, Role), AccountsError>;

    /// Binds a device id to the account that first syncs with it; FORBIDDEN when it is
    /// another account's.
    fn bind_device(&self, device_id: &str, user_id: &str, now: i64) -> Result<(), AccountsError>;

    /// The account a device id is bound to, if any.
    fn device_owner(&self, device_id: &str) -> Result<Option<String>, AccountsError>;

    /// `user_id`'s quota turn, held until the returned value is dropped: a push reads the
    /// account's usage, stores its events and records them while holding it, so that two pushes
    /// of one account never both pass the quota on the same usage — in every process sharing
    /// these accounts. Other accounts wait only where a store bounds how many turns are held at
    /// once (PostgreSQL's: half its pool). [`AccountsError::Busy`] when it was not had within
    /// [`TURN_WAIT`].
    fn quota_turn(&self, user_id: &str) -> Result<QuotaTurn, AccountsError>;

    /// Events stored today (`day`: days since the epoch, UTC) and bytes stored in all.
    fn usage(&self, user_id: &str, day: i64) -> Result<(i64, i64), AccountsError>;

    fn add_usage(
        &self,
        user_id: &str,
        day: i64,
        events: i64,
        bytes: i64,
    ) -> Result<(), AccountsError>;

    /// Gives the log's workspaces that have no row to `owner` (the first account; `import
    /// --owner`). Returns how many it adopted.
    fn adopt(&self, owner: &str, workspaces: &[String], now: i64) -> Result<usize, AccountsError>;
}
