-- Accounts (DESIGN.md rule 23), as SQLite's accounts.db holds them: users, sessions, tokens,
-- workspaces, members, invites and their claims, device bindings, usage, and the revocation
-- counter the servers poll. Secrets only as SHA-256 hex. Times: ms since the epoch.

CREATE TABLE users (
    user_id       text COLLATE "C" PRIMARY KEY,
    username      text    NOT NULL,
    password_hash text    NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    disabled      boolean NOT NULL DEFAULT false,
    deleted       boolean NOT NULL DEFAULT false,
    created_at    bigint  NOT NULL
);
-- Unique without regard to ASCII case, as SQLite's NOCASE (in the "C" collation lower()
-- folds ASCII only, whatever the database's locale).
CREATE UNIQUE INDEX users_username ON users (lower(username COLLATE "C"));

CREATE TABLE sessions (
    session_hash text COLLATE "C" PRIMARY KEY,
    session_id   text COLLATE "C" NOT NULL UNIQUE,
    user_id      text COLLATE "C" NOT NULL REFERENCES users (user_id),
    created_at   bigint NOT NULL,
    last_used_at bigint NOT NULL,
    user_agent   text   NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE tokens (
    token_id     text COLLATE "C" PRIMARY KEY,
    token_hash   text COLLATE "C" NOT NULL UNIQUE,
    user_id      text COLLATE "C" NOT NULL REFERENCES users (user_id),
    name         text   NOT NULL,
    created_at   bigint NOT NULL,
    expires_at   bigint,
    last_used_at bigint
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE workspaces (
    workspace_id text COLLATE "C" PRIMARY KEY,
    name         text    NOT NULL,
    created_by   text COLLATE "C" REFERENCES users (user_id),
    created_at   bigint  NOT NULL,
    deleted_at   bigint,
    needs_inbox  boolean NOT NULL DEFAULT false
);
CREATE INDEX workspaces_creator ON workspaces (created_by);

CREATE TABLE members (
    workspace_id text COLLATE "C" NOT NULL REFERENCES workspaces (workspace_id),
    user_id      text COLLATE "C" NOT NULL REFERENCES users (user_id),
    role         text   NOT NULL CHECK (role IN ('owner', 'member', 'reader')),
    joined_at    bigint NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE invites (
    invite_id    text COLLATE "C" PRIMARY KEY,
    token_hash   text COLLATE "C" NOT NULL UNIQUE,
    workspace_id text COLLATE "C" NOT NULL REFERENCES workspaces (workspace_id),
    role         text   NOT NULL CHECK (role IN ('owner', 'member', 'reader')),
    max_uses     bigint NOT NULL CHECK (max_uses >= 1),
    expires_at   bigint NOT NULL,
    created_by   text COLLATE "C" NOT NULL REFERENCES users (user_id),
    created_at   bigint NOT NULL,
    revoked_at   bigint
);
CREATE INDEX invites_workspace ON invites (workspace_id);

CREATE TABLE invite_claims (
    invite_id  text COLLATE "C" NOT NULL REFERENCES invites (invite_id),
    user_id    text COLLATE "C" NOT NULL REFERENCES users (user_id),
    claimed_at bigint  NOT NULL,
    joined     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (invite_id, user_id)
);

CREATE TABLE devices (
    device_id text COLLATE "C" PRIMARY KEY,
    user_id   text COLLATE "C" NOT NULL REFERENCES users (user_id),
    bound_at  bigint NOT NULL
);

CREATE TABLE usage (
    user_id text COLLATE "C" NOT NULL REFERENCES users (user_id),
    day     bigint NOT NULL,
    events  bigint NOT NULL,
    bytes   bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);

CREATE TABLE revocations (
    id    integer PRIMARY KEY CHECK (id = 1),
    count bigint  NOT NULL
);
INSERT INTO revocations (id, count) VALUES (1, 0);
