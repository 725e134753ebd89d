-- events.db: the event log (immutable), the device's outbox, and the clock's state.
-- Applied at every open; every statement is idempotent.

-- The log of accepted events. `seq` is the per-workspace position the server assigned
-- (DESIGN.md rule 10). Never updated or deleted (rule 4): the triggers below refuse it.
CREATE TABLE IF NOT EXISTS events (
    event_id       TEXT    NOT NULL PRIMARY KEY,
    workspace_id   TEXT    NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
    event_data     TEXT    NOT NULL,
    hlc_timestamp  TEXT    NOT NULL,
    device_id      TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    -- The account that pushed the event (set by the server, DESIGN.md rule 23; null for
    -- events from before accounts and for the device's own events before acceptance). Not
    -- content: rule 12 compares events without it.
    user_id        TEXT,
    UNIQUE (aggregate_id, version),
    UNIQUE (workspace_id, seq)
);
-- UNIQUE (aggregate_id, version) already indexes lookups by aggregate_id. The secondary
-- indexes (by time, by type) are in events_indexes.sql: a first download drops and rebuilds them.

CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is immutable: UPDATE refused');
END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is immutable: DELETE refused');
END;

-- This device's events not yet accepted by the server (DESIGN.md rule 5), in recording order
-- (`recorded`; a todo's sort key is its `position`, a different thing).
-- Rebase may change `version`; the clock correction may change stamps; acceptance moves a row
-- into `events`.
CREATE TABLE IF NOT EXISTS outbox (
    recorded       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    workspace_id   TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
    event_data     TEXT    NOT NULL,
    hlc_timestamp  TEXT    NOT NULL,
    device_id      TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (aggregate_id, version)
);

-- The HLC's persisted state (DESIGN.md rule 9): one row.
CREATE TABLE IF NOT EXISTS hlc_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    node         TEXT    NOT NULL,
    last_ms      INTEGER NOT NULL,
    last_counter INTEGER NOT NULL,
    offset_ms    INTEGER NOT NULL
);

-- Stamps this device retired in a clock correction (DESIGN.md rule 8): its clock never issues
-- them again.
CREATE TABLE IF NOT EXISTS retired_stamps (
    hlc TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;

-- Outbox events the server refused for good (INVALID_EVENT, TOO_LARGE on their own; DESIGN.md
-- rule 13): kept, with the reason, so they can be shown and exported; never sent again.
CREATE TABLE IF NOT EXISTS set_aside (
    event_id       TEXT    NOT NULL PRIMARY KEY,
    workspace_id   TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    event_data     TEXT    NOT NULL,
    hlc_timestamp  TEXT    NOT NULL,
    device_id      TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    code           TEXT    NOT NULL,
    reason         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS set_aside_aggregate ON set_aside (aggregate_id);

-- Each workspace's head (its greatest seq), kept in the append transaction, so finding where
-- the log is never scans it (catch-up, pulls). Filled from the log once for older files.
CREATE TABLE IF NOT EXISTS heads (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    head         INTEGER NOT NULL
) WITHOUT ROWID;

-- The log's identity (CONTRACT.md `log_id`): minted when the database is made, new after a
-- restore or an import into an empty data dir.
CREATE TABLE IF NOT EXISTS log_meta (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    log_id TEXT    NOT NULL
);

-- On a device: the identity of the server log each workspace syncs with (`log_id`), so a
-- restored or replaced server log is noticed and never mixed with this one.
CREATE TABLE IF NOT EXISTS server_logs (
    workspace_id TEXT NOT NULL PRIMARY KEY,
    log_id       TEXT NOT NULL
) WITHOUT ROWID;

-- On a device: every command the page sent (its id minted by the page, DESIGN.md rule 18) with
-- the reply it got, recorded in the transaction of its outbox rows — also for commands that
-- decided no event or were refused — so a command sent again (a lost reply, a tab handoff) is
-- answered from here and never runs twice. Local only: never sent, never part of an event.
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT NOT NULL PRIMARY KEY,
    reply      TEXT NOT NULL
) WITHOUT ROWID;

-- How many times a tab's worker has taken ownership of these databases (docs/protocol.md
-- "Several tabs"): the owner's epoch, so other tabs tell a new owner's messages from a
-- previous owner's late ones. Local only: one row.
CREATE TABLE IF NOT EXISTS ownership (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL CHECK (epoch >= 1)
);

-- On a device: its own undoable actions, per workspace (DESIGN.md rule 19: undo history is per
-- device and per workspace, kept here so it survives a reload and a tab handoff). `events`: the
-- ids of the events the action recorded (a JSON array); while it is undone (`undone` = 1),
-- `undo_events` holds those of its undo, which a redo takes back. The undone steps are always
-- the newest ones (a new action forgets them). Local only: never sent.
CREATE TABLE IF NOT EXISTS undo_steps (
    step         INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    events       TEXT    NOT NULL,
    undone       INTEGER NOT NULL DEFAULT 0,
    undo_events  TEXT
);
CREATE INDEX IF NOT EXISTS undo_steps_workspace ON undo_steps (workspace_id, undone, step);

-- On a device: the names of the accounts its pulled events name (`user_id`), as the server
-- sent them with the pull, so History and conflicts say who, offline too. Local only.
CREATE TABLE IF NOT EXISTS people (
    user_id  TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL
) WITHOUT ROWID;
