-- The central log (DESIGN.md rules 4, 10, 12): the same table as SQLite's events.db, with
-- byte-wise ("C") collation on everything compared or sorted as text, as SQLite compares it.

CREATE TABLE log_meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE events (
    event_id       text COLLATE "C" NOT NULL,
    workspace_id   text COLLATE "C" NOT NULL,
    seq            bigint  NOT NULL CHECK (seq >= 1),
    aggregate_id   text COLLATE "C" NOT NULL,
    version        bigint  NOT NULL CHECK (version >= 1),
    event_type     text    NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 1),
    event_data     text    NOT NULL,
    hlc_timestamp  text COLLATE "C" NOT NULL,
    device_id      text COLLATE "C" NOT NULL,
    created_at     bigint  NOT NULL,
    -- The account that pushed the event (rule 23); not content (rule 12).
    user_id        text,
    CONSTRAINT events_event_id PRIMARY KEY (event_id),
    CONSTRAINT events_aggregate_version UNIQUE (aggregate_id, version),
    CONSTRAINT events_workspace_seq UNIQUE (workspace_id, seq)
);

-- Each workspace's head: the last seq, written in the append's transaction.
CREATE TABLE heads (
    workspace_id text COLLATE "C" PRIMARY KEY,
    head         bigint NOT NULL CHECK (head >= 1)
);

-- The log is immutable (rule 4): updates, deletes and truncation are refused.
CREATE FUNCTION tandem_log_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is immutable: % refused', TG_OP;
END
$$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION tandem_log_is_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tandem_log_is_immutable();
