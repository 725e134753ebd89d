//! The sync protocol's JSON messages (docs/protocol.md): push, pull, their answers, the error
//! shape, and the live WebSocket's messages. Ids are plain strings here, checked by the server
//! (a malformed id is INVALID_EVENT, not a parse failure of the whole body).

use serde::{Deserialize, Serialize};

/// An event on the wire: the stored envelope with `event_data` as a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent {
    pub event_id: String,
    pub workspace_id: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub event_data: serde_json::Value,
    pub hlc_timestamp: String,
    pub device_id: String,
    pub version: u64,
    pub created_at: i64,
}

/// An event in the server's log, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub seq: u64,
    /// The account that pushed it (set by the server; null for events from before accounts).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub event: WireEvent,
}

/// `POST /api/sync/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub device_id: String,
    pub workspace_id: String,
    /// The greatest `seq` of this workspace the device has pulled.
    pub cursor: u64,
    pub events: Vec<WireEvent>,
}

/// One event of a push, stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted<Id = String> {
    pub event_id: Id,
    pub seq: u64,
}

/// The answer to an accepted push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// Every event of the request with its seq, in request order (already stored ones too).
    pub accepted: Vec<Accepted>,
    /// The workspace's head after the push.
    pub head: u64,
    /// The server's wall clock (ms since the epoch).
    pub server_time_ms: i64,
    /// The server log's identity (new after a restore or an import into an empty data dir).
    #[serde(default)]
    pub log_id: String,
    /// The account the server recorded the events under (so the device shows its own events
    /// with its person's name too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pusher: Option<Person>,
}

/// `POST /api/sync/pull`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub device_id: String,
    pub workspace_id: String,
    /// Return events with `seq > cursor`.
    pub cursor: u64,
    /// At most this many (default 500, clamped to the server's maximum).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// An account's name, for showing who made an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub events: Vec<LoggedEvent>,
    /// The names of the accounts the events' `user_id`s name (so a device shows who made what,
    /// offline too; a deleted account keeps its name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<Person>,
    pub head: u64,
    /// Whether events after the last one returned exist.
    pub has_more: bool,
    pub server_time_ms: i64,
    /// The server log's identity (see [`PushResponse::log_id`]).
    #[serde(default)]
    pub log_id: String,
}

/// Error codes (CONTRACT.md), each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Malformed,
    TooLarge,
    PullRequired,
    CursorAhead,
    VersionConflict,
    IdReused,
    ClockDrift,
    InvalidEvent,
    Unauthenticated,
    Forbidden,
    /// Sign-up is closed here (or needs an invite).
    SignUpClosed,
    UsernameTaken,
    /// A new password under 10 characters.
    WeakPassword,
    /// Too many attempts: retry after `Retry-After`.
    RateLimited,
    /// The last owner cannot leave a workspace or stop being its owner.
    LastOwner,
    /// An invite expired, was used up or revoked.
    InviteGone,
    /// A quota of the account's (events per day, bytes stored) is reached.
    QuotaExceeded,
    /// No such thing (a token, an invite, a member) among the caller's own.
    NotFound,
    /// The request's Host is not this site's (421): DNS rebinding is refused.
    MisdirectedRequest,
    /// A bound of the server's was reached (DESIGN.md rule 22): retry after `Retry-After`.
    Busy,
    /// A bug on the server (5xx).
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            Self::Malformed => 400,
            Self::TooLarge => 413,
            Self::PullRequired | Self::CursorAhead | Self::VersionConflict | Self::IdReused => 409,
            Self::ClockDrift | Self::InvalidEvent => 422,
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::SignUpClosed => 403,
            Self::UsernameTaken | Self::LastOwner => 409,
            Self::WeakPassword => 422,
            Self::RateLimited | Self::QuotaExceeded => 429,
            Self::InviteGone => 410,
            Self::NotFound => 404,
            Self::MisdirectedRequest => 421,
            Self::Busy => 503,
            Self::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "MALFORMED",
            Self::TooLarge => "TOO_LARGE",
            Self::PullRequired => "PULL_REQUIRED",
            Self::CursorAhead => "CURSOR_AHEAD",
            Self::VersionConflict => "VERSION_CONFLICT",
            Self::IdReused => "ID_REUSED",
            Self::ClockDrift => "CLOCK_DRIFT",
            Self::InvalidEvent => "INVALID_EVENT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::SignUpClosed => "SIGN_UP_CLOSED",
            Self::UsernameTaken => "USERNAME_TAKEN",
            Self::WeakPassword => "WEAK_PASSWORD",
            Self::RateLimited => "RATE_LIMITED",
            Self::LastOwner => "LAST_OWNER",
            Self::InviteGone => "INVITE_GONE",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::MisdirectedRequest => "MISDIRECTED_REQUEST",
            Self::Busy => "BUSY",
            Self::Internal => "INTERNAL",
        }
    }
}

/// Every rejected request's body: `{"code": ..., "message": ...}` plus fields where useful.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct SyncError {
    pub code: ErrorCode,
    pub message: String,
    /// The workspace head (PULL_REQUIRED, CURSOR_AHEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// How far ahead of the server's clock the stamp was, in ms (CLOCK_DRIFT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<u64>,
    /// The server's max clock drift in ms (CLOCK_DRIFT): a device re-stamps only its events
    /// stamped beyond server time + this (DESIGN.md rule 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drift_ms: Option<u32>,
    /// How long to wait before retrying, in ms (BUSY; also the `Retry-After` header, in s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u32>,
    /// The event the error is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The server's wall clock (ms), so a device can tell whether its clock is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time_ms: Option<i64>,
}

impl SyncError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            head: None,
            offset_ms: None,
            max_drift_ms: None,
            retry_after_ms: None,
            event_id: None,
            server_time_ms: None,
        }
    }

    pub fn with_head(mut self, head: u64) -> Self {
        self.head = Some(head);
        self
    }

    pub fn with_event(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    pub fn with_offset(mut self, offset_ms: u64) -> Self {
        self.offset_ms = Some(offset_ms);
        self
    }

    pub fn at(mut self, server_time_ms: i64) -> Self {
        self.server_time_ms = Some(server_time_ms);
        self
    }
}

/// Messages the server sends on the live WebSocket (`/api/sync/live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The workspace's head moved; `events` carries the new events when few (else pull).
    Head {
        workspace_id: String,
        head: u64,
        /// The server log's identity (on the first message).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<LoggedEvent>,
        /// The names of the accounts the events' `user_id`s name (as a pull's `people`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        people: Vec<Person>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_the_contract_names_with_their_statuses() {
        for (code, name, status) in [
            (ErrorCode::Malformed, "MALFORMED", 400),
            (ErrorCode::TooLarge, "TOO_LARGE", 413),
            (ErrorCode::PullRequired, "PULL_REQUIRED", 409),
            (ErrorCode::CursorAhead, "CURSOR_AHEAD", 409),
            (ErrorCode::VersionConflict, "VERSION_CONFLICT", 409),
            (ErrorCode::IdReused, "ID_REUSED", 409),
            (ErrorCode::ClockDrift, "CLOCK_DRIFT", 422),
            (ErrorCode::InvalidEvent, "INVALID_EVENT", 422),
            (ErrorCode::Unauthenticated, "UNAUTHENTICATED", 401),
            (ErrorCode::Forbidden, "FORBIDDEN", 403),
            (ErrorCode::Busy, "BUSY", 503),
            (ErrorCode::SignUpClosed, "SIGN_UP_CLOSED", 403),
            (ErrorCode::UsernameTaken, "USERNAME_TAKEN", 409),
            (ErrorCode::WeakPassword, "WEAK_PASSWORD", 422),
            (ErrorCode::RateLimited, "RATE_LIMITED", 429),
            (ErrorCode::LastOwner, "LAST_OWNER", 409),
            (ErrorCode::InviteGone, "INVITE_GONE", 410),
            (ErrorCode::QuotaExceeded, "QUOTA_EXCEEDED", 429),
            (ErrorCode::NotFound, "NOT_FOUND", 404),
            (ErrorCode::MisdirectedRequest, "MISDIRECTED_REQUEST", 421),
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{name}\""));
            assert_eq!(code.as_str(), name);
            assert_eq!(code.status(), status);
        }
    }

    #[test]
    fn errors_carry_only_the_fields_that_apply() {
        let e = SyncError::new(ErrorCode::PullRequired, "pull first")
            .with_head(7)
            .at(5);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "PULL_REQUIRED", "message": "pull first", "head": 7, "server_time_ms": 5})
        );
    }
}
