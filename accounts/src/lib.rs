//! Tandem's accounts (DESIGN.md rules 23–24, CONTRACT.md "Accounts, workspaces, access"):
//! users and their password hashes, sessions and API tokens (stored hashed), workspaces with
//! their members and roles, invites, the binding of device ids to accounts, and usage for
//! quotas — in `accounts.db`, beside the event log and apart from it (this state changes; the
//! log never does). Native only: the browser never holds accounts.
//!
//! `names` and `secret` are pure; `password` hashes with argon2id (CPU-bound: callers run it
//! off the async runtime); `store` is what the server asks of accounts, `db` its SQLite adapter (PostgreSQL's is in
//! `tandem-pg`), `suite` the tests both pass. Time is passed in, never read here.

pub mod access;
pub mod db;
pub mod names;
pub mod password;
pub mod secret;
pub mod store;
#[cfg(any(test, feature = "suite"))]
pub mod suite;
pub mod turns;

pub use access::Caller;
pub use db::{
    Accounts, AccountsError, Credential, Invite, InviteCheck, Member, NewAccount, NewSession,
    Principal, SessionInfo, TokenInfo, User, UserRecord, WorkspaceInfo, NOT_A_MEMBER,
};
pub use names::{NameError, Role};
pub use store::{AccountStore, QuotaTurn};
pub use turns::{Turn, Turns};
