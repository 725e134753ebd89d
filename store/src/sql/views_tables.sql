-- The projection's own tables: dropped and recreated by a rebuild.
CREATE TABLE IF NOT EXISTS lists (
    list_id      TEXT    NOT NULL PRIMARY KEY,
    workspace_id TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    name_hlc     TEXT    NOT NULL,
    created_hlc  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    deleted      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lists_workspace ON lists (workspace_id, created_hlc);

CREATE TABLE IF NOT EXISTS todos (
    todo_id       TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    NOT NULL,
    list_id       TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    notes         TEXT    NOT NULL,
    due_date      TEXT,
    completed     INTEGER NOT NULL,
    position      TEXT    NOT NULL,
    created_hlc   TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    title_hlc     TEXT    NOT NULL,
    notes_hlc     TEXT    NOT NULL,
    due_date_hlc  TEXT    NOT NULL,
    completed_hlc TEXT    NOT NULL,
    position_hlc  TEXT    NOT NULL,
    list_hlc      TEXT    NOT NULL,
    deleted       INTEGER NOT NULL
);
-- A list's todos in display order; equal positions break by id.
CREATE INDEX IF NOT EXISTS todos_list ON todos (list_id, position, todo_id);

-- Each device's readable name in a workspace (DeviceNamed events; the aggregate is a name-based
-- id of workspace and device).
CREATE TABLE IF NOT EXISTS devices (
    aggregate_id TEXT NOT NULL PRIMARY KEY,
    device_id    TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    name_hlc     TEXT NOT NULL
);
-- Not unique: a forged name (another device's id on this one's aggregate) that reached a log
-- must not stop the views from being written; the server refuses it, and verify reports it.
CREATE INDEX IF NOT EXISTS devices_by_device ON devices (workspace_id, device_id);

-- Competing edits nobody superseded whose values differ from the current one (DESIGN.md
-- rule 19; equal values are not conflicts for the user), for live items only.
CREATE TABLE IF NOT EXISTS conflicts (
    aggregate_id TEXT NOT NULL,
    field        TEXT NOT NULL,
    hlc          TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, field, hlc, event_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS history (
    aggregate_id TEXT    NOT NULL,
    hlc          TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    data         TEXT    NOT NULL,
    PRIMARY KEY (aggregate_id, hlc, event_id)
) WITHOUT ROWID;

-- Events this build cannot decode (a newer device's type or schema version): kept in the log,
-- left out of the views, listed here so the page can say "update Tandem". A rebuild by a build
-- that knows them picks them up (Views::open_current rebuilds when one decodes now).
-- `unknown` is 1 for a type or schema version this build does not know (a newer build may),
-- 0 for data that does not match a known schema (no build will).
CREATE TABLE IF NOT EXISTS skipped_events (
    event_id       TEXT    NOT NULL PRIMARY KEY,
    aggregate_id   TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    unknown        INTEGER NOT NULL,
    reason         TEXT    NOT NULL
);

-- Each list's live active and completed todos, kept by the triggers below as todo rows are
-- written (the sidebar shows every list's count; reading them must not count every todo).
-- A list without live todos has no row, so the table is a function of `todos` alone.
CREATE TABLE IF NOT EXISTS list_counts (
    list_id   TEXT    NOT NULL PRIMARY KEY,
    active    INTEGER NOT NULL,
    completed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS list_counts_insert AFTER INSERT ON todos WHEN NOT new.deleted
BEGIN
    INSERT INTO list_counts (list_id, active, completed)
    VALUES (new.list_id, NOT new.completed, new.completed != 0)
    ON CONFLICT (list_id) DO UPDATE SET active = active + (NOT new.completed),
                                        completed = completed + (new.completed != 0);
END;
CREATE TRIGGER IF NOT EXISTS list_counts_delete AFTER DELETE ON todos WHEN NOT old.deleted
BEGIN
    UPDATE list_counts SET active = active - (NOT old.completed),
                           completed = completed - (old.completed != 0)
     WHERE list_id = old.list_id;
    DELETE FROM list_counts WHERE list_id = old.list_id AND active = 0 AND completed = 0;
END;
CREATE TRIGGER IF NOT EXISTS list_counts_update AFTER UPDATE ON todos
BEGIN
    UPDATE list_counts SET active = active - (NOT old.completed),
                           completed = completed - (old.completed != 0)
     WHERE list_id = old.list_id AND NOT old.deleted;
    DELETE FROM list_counts WHERE list_id = old.list_id AND active = 0 AND completed = 0;
    INSERT INTO list_counts (list_id, active, completed)
    SELECT new.list_id, NOT new.completed, new.completed != 0 WHERE NOT new.deleted
    ON CONFLICT (list_id) DO UPDATE SET active = active + (NOT new.completed),
                                        completed = completed + (new.completed != 0);
END;
