-- accounts.db: who may touch which workspace (DESIGN.md rule 23). Mutable state, kept apart
-- from the immutable event log. Applied at every open; every statement is idempotent.
-- Secrets (sessions, tokens, invites) are stored only as SHA-256 hex of the secret.

CREATE TABLE IF NOT EXISTS users (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    -- Unique without regard to case: "Ann" and "ann" are one name. A deleted account keeps
    -- its row and its name (History shows it; nobody can take it over later).
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT    NOT NULL PRIMARY KEY,
    session_id   TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (user_id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    user_agent   TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);

CREATE TABLE IF NOT EXISTS tokens (
    token_id     TEXT    NOT NULL PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (user_id),
    name         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user_id);

-- A workspace exists once an account creates it (DESIGN.md rule 10). Deleting one keeps its
-- row (and its events: the log is immutable) and ends every membership.
CREATE TABLE IF NOT EXISTS workspaces (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    created_by   TEXT    REFERENCES users (user_id),
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER,
    -- 1 for an account's own first workspace until the server has written its "Inbox" list.
    needs_inbox  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS members (
    workspace_id TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    user_id      TEXT    NOT NULL REFERENCES users (user_id),
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'member', 'reader')),
    joined_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_user ON members (user_id);

CREATE TABLE IF NOT EXISTS invites (
    invite_id    TEXT    NOT NULL PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    workspace_id TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'member', 'reader')),
    max_uses     INTEGER NOT NULL CHECK (max_uses >= 1),
    expires_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL REFERENCES users (user_id),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX IF NOT EXISTS invites_workspace ON invites (workspace_id);

-- One use of an invite each: an account made with it, or a join. The person who signed up
-- with an invite joins with it later without a second use.
CREATE TABLE IF NOT EXISTS invite_claims (
    invite_id  TEXT    NOT NULL REFERENCES invites (invite_id),
    user_id    TEXT    NOT NULL REFERENCES users (user_id),
    claimed_at INTEGER NOT NULL,
    -- 1 once the claim was used to join (a removed member cannot rejoin on it).
    joined     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (invite_id, user_id)
) WITHOUT ROWID;

-- A device id belongs to the account that first synced with it (DESIGN.md rule 23).
CREATE TABLE IF NOT EXISTS devices (
    device_id  TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (user_id),
    bound_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- What each account stored, for the quotas (off unless configured): events per UTC day, and
-- bytes of event data in all.
CREATE TABLE IF NOT EXISTS usage (
    user_id TEXT    NOT NULL REFERENCES users (user_id),
    day     INTEGER NOT NULL,
    events  INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

-- Counts every change that takes access away (a session or token ended, a member removed, an
-- account disabled or deleted, a workspace deleted), in the change's transaction: the server
-- polls it and re-checks its open live sockets when it moves — also after the command line
-- changed something while the server runs.
CREATE TABLE IF NOT EXISTS revocations (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL
);
INSERT OR IGNORE INTO revocations (id, count) VALUES (1, 0);
