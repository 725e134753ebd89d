-- The server's views (read models) projected from the log, as SQLite's views.db holds them
-- (store/src/sql/views_tables.sql): written by one process at a time (the projector's lock),
-- read by all. Each workspace's checkpoint is the greatest seq applied. Text compared and
-- sorted byte-wise ("C"), as SQLite does.

CREATE TABLE view_checkpoints (
    workspace_id text COLLATE "C" PRIMARY KEY,
    seq          bigint NOT NULL
);

CREATE TABLE view_lists (
    list_id      text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    name         text    NOT NULL,
    name_hlc     text COLLATE "C" NOT NULL,
    created_hlc  text COLLATE "C" NOT NULL,
    created_at   bigint  NOT NULL,
    deleted      boolean NOT NULL
);
CREATE INDEX view_lists_workspace ON view_lists (workspace_id, created_hlc);

CREATE TABLE view_todos (
    todo_id       text COLLATE "C" PRIMARY KEY,
    workspace_id  text COLLATE "C" NOT NULL,
    list_id       text COLLATE "C" NOT NULL,
    title         text    NOT NULL,
    notes         text    NOT NULL,
    due_date      text,
    completed     boolean NOT NULL,
    position      text COLLATE "C" NOT NULL,
    created_hlc   text COLLATE "C" NOT NULL,
    created_at    bigint  NOT NULL,
    title_hlc     text COLLATE "C" NOT NULL,
    notes_hlc     text COLLATE "C" NOT NULL,
    due_date_hlc  text COLLATE "C" NOT NULL,
    completed_hlc text COLLATE "C" NOT NULL,
    position_hlc  text COLLATE "C" NOT NULL,
    list_hlc      text COLLATE "C" NOT NULL,
    deleted       boolean NOT NULL
);
CREATE INDEX view_todos_list ON view_todos (list_id, position, todo_id);

CREATE TABLE view_devices (
    aggregate_id text COLLATE "C" PRIMARY KEY,
    device_id    text COLLATE "C" NOT NULL,
    workspace_id text COLLATE "C" NOT NULL,
    name         text NOT NULL,
    name_hlc     text COLLATE "C" NOT NULL
);
CREATE INDEX view_devices_by_device ON view_devices (workspace_id, device_id);

CREATE TABLE view_conflicts (
    aggregate_id text COLLATE "C" NOT NULL,
    field        text COLLATE "C" NOT NULL,
    hlc          text COLLATE "C" NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    device_id    text COLLATE "C" NOT NULL,
    value        text NOT NULL,
    PRIMARY KEY (aggregate_id, field, hlc, event_id)
);

CREATE TABLE view_history (
    aggregate_id text COLLATE "C" NOT NULL,
    hlc          text COLLATE "C" NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    event_type   text   NOT NULL,
    device_id    text COLLATE "C" NOT NULL,
    created_at   bigint NOT NULL,
    data         text   NOT NULL,
    PRIMARY KEY (aggregate_id, hlc, event_id)
);

CREATE TABLE view_skipped_events (
    event_id       text COLLATE "C" PRIMARY KEY,
    aggregate_id   text COLLATE "C" NOT NULL,
    event_type     text    NOT NULL,
    schema_version integer NOT NULL,
    unknown        boolean NOT NULL,
    reason         text    NOT NULL
);

-- The projection's version (tandem_store::views::PROJECTION_VERSION) the rows were made by:
-- a build whose fold differs empties the views and projects them again.
CREATE TABLE view_meta (
    name    text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL
);
