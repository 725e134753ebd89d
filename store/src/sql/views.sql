-- views.db: read models projected from the log (and, on a device, the outbox).
-- Engine tables: the projection version and per-workspace checkpoints.
CREATE TABLE IF NOT EXISTS projection_meta (
    name    TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    seq          INTEGER NOT NULL
);
