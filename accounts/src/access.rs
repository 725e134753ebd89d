//! Who is asking and what they may touch (DESIGN.md rule 23), in the contract's answers: no
//! or bad credentials are 401 UNAUTHENTICATED; a workspace one is not a member of — or that
//! does not exist, or was deleted — is 403 FORBIDDEN with the same body; a reader's write is
//! 403 FORBIDDEN. Every path into a workspace (push, pull, live, pages, server functions) asks
//! here before it reads or stores anything.

use tandem_protocol::sync::{ErrorCode, SyncError};

use crate::db::{AccountsError, Principal, NOT_A_MEMBER};
use crate::names::Role;
use crate::store::AccountStore;

/// What the server made of a request's credentials (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// Credentials that do not hold (unknown, expired, revoked, malformed, or for another
    /// account than the client expects): the reason, for the 401's message.
    Refused(String),
    /// The credentials could not be checked (accounts.db failed or was busy): the request is
    /// answered BUSY, never as signed out.
    Unavailable(String),
    Signed(Principal),
}

impl Caller {
    /// The signed-in principal, or 401.
    pub fn principal(&self) -> Result<&Principal, SyncError> {
        match self {
            Self::Signed(p) => Ok(p),
            Self::Anonymous => Err(SyncError::new(
                ErrorCode::Unauthenticated,
                "sign in first (a session cookie or an API token)",
            )),
            Self::Refused(why) => Err(SyncError::new(ErrorCode::Unauthenticated, why.clone())),
            Self::Unavailable(why) => {
                let mut e = SyncError::new(ErrorCode::Busy, why.clone());
                e.retry_after_ms = Some(1_000);
                Err(e)
            }
        }
    }
}

/// The contract error for an accounts failure.
pub fn refusal(e: AccountsError) -> SyncError {
    let code = match &e {
        AccountsError::Forbidden(_) => ErrorCode::Forbidden,
        AccountsError::UsernameTaken => ErrorCode::UsernameTaken,
        AccountsError::LastOwner => ErrorCode::LastOwner,
        AccountsError::InviteGone => ErrorCode::InviteGone,
        AccountsError::NotFound | AccountsError::NoSuchUser(_) => ErrorCode::NotFound,
        AccountsError::NotFirst => ErrorCode::SignUpClosed,
        AccountsError::TooMany(_) => ErrorCode::TooLarge,
        AccountsError::Busy(_) => ErrorCode::Busy,
        AccountsError::Name(crate::names::NameError::WeakPassword) => ErrorCode::WeakPassword,
        AccountsError::Name(_) => ErrorCode::Malformed,
        AccountsError::Db(_)
        | AccountsError::Open(_)
        | AccountsError::Corrupt(_)
        | AccountsError::Backend(_) => ErrorCode::Internal,
    };
    let mut refused = SyncError::new(code, e.to_string());
    if code == ErrorCode::Busy {
        refused.retry_after_ms = Some(1_000);
    }
    refused
}

/// The caller's role in `workspace_id` (checked to be a UUID by the caller): 401 without a
/// principal, 403 — the same for absent and foreign workspaces — without a membership.
pub fn member(
    accounts: &dyn AccountStore,
    caller: &Caller,
    workspace_id: &str,
) -> Result<(Principal, Role), SyncError> {
    let principal = caller.principal()?.clone();
    let role = accounts
        .role(&principal.user.user_id, workspace_id)
        .map_err(refusal)?;
    Ok((principal, role))
}

/// As [`member`], for a write: a reader is refused.
pub fn writer(
    accounts: &dyn AccountStore,
    caller: &Caller,
    workspace_id: &str,
) -> Result<(Principal, Role), SyncError> {
    let (principal, role) = member(accounts, caller, workspace_id)?;
    if !role.writes() {
        return Err(SyncError::new(
            ErrorCode::Forbidden,
            "a reader of this workspace cannot change it",
        ));
    }
    Ok((principal, role))
}

/// The one FORBIDDEN answer for a workspace one may not see.
pub fn not_a_member() -> SyncError {
    SyncError::new(ErrorCode::Forbidden, NOT_A_MEMBER)
}
