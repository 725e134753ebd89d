//! Messages between the page and the Dedicated Worker that owns the device's OPFS databases
//! (the device's data service, docs/protocol.md "Page and worker").
//!
//! Both directions travel as JSON strings through `postMessage`, tagged by `type`, so the page
//! and the worker (two separate wasm modules) agree on one documented shape. Ids are the
//! canonical UUID text; stamps are HLC text (`hlc` module of tandem-events).

use serde::{Deserialize, Serialize};

/// A message from the page to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PageMessage {
    /// The page is hydrated and shows the server's views at `head` of the server log `log_id`
    /// (both embedded in the page; `None` when the server could not render them). The worker
    /// answers [`WorkerMessage::Ready`], then [`WorkerMessage::CaughtUp`] once its views reach
    /// `head` (or at once when they cannot: another log, no network).
    /// `workspace_id`: the workspace the page shows (the owner serves each page its own);
    /// `role`: the account's role there (`reader` pages send no commands, and the worker
    /// refuses any, DESIGN.md rule 23).
    Open {
        head: u64,
        log_id: Option<String>,
        workspace_id: String,
        #[serde(default)]
        role: Option<String>,
    },
    /// A query or a command, answered by a [`WorkerMessage::Reply`] with the same id.
    Request { id: u64, request: Request },
    /// The page's network state (`online`/`offline` events; a worker's own network is not cut
    /// by the browser's offline switch, so the page tells it).
    Network { online: bool },
    /// The page came to the foreground: a good moment to pull.
    Focus,
    /// The user asked to sync now.
    SyncNow,
}

/// A query or a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The live lists of the default workspace, oldest first.
    Lists,
    /// What a list page shows, read at once: the lists with their counts, and one list's live
    /// todos (`None`: the first list).
    Snapshot { list_id: Option<String> },
    /// The live todos of a list that pass `filter`, in display order, with the list's counts.
    Todos { list_id: String, filter: Filter },
    /// A list's counts.
    Counts { list_id: String },
    /// The Trash: deleted lists and todos, and todos hidden because their list is deleted.
    Trash,
    /// One todo (also a deleted one), or nothing.
    Todo { id: String },
    /// The live conflicts of a list or todo: per field, every competing value.
    Conflicts { id: String },
    /// Every device's name in the workspace, and this device's id.
    Devices,
    /// Every event of a list or todo, described (what changed, old → new), newest first.
    History { id: String },
    /// What "Undo" and "Redo" would take back now (their labels).
    UndoState,
    /// The inspector: the store's state (device, clock, cursors, counts).
    InspectState,
    /// The inspector: events of the log, the outbox or the set-aside ones, newest first,
    /// filtered (type, item, device: exact values), `limit` (at most 200) after `offset`.
    InspectEvents {
        table: EventTable,
        #[serde(default)]
        event_type: Option<String>,
        #[serde(default)]
        item: Option<String>,
        #[serde(default)]
        device: Option<String>,
        #[serde(default)]
        offset: u64,
        limit: u64,
    },
    /// The inspector's SQL console: one read-only statement over events.db or views.db, its
    /// rows after `offset` (a page of at most 100). Statements that would write are refused;
    /// one that runs too long is interrupted.
    Query {
        database: Database,
        sql: String,
        #[serde(default)]
        offset: u64,
    },
    /// Drops the views and replays the log and the outbox ([`WorkerMessage::Rebuilding`] says
    /// how far), answered `rebuilt`.
    RebuildViews,
    /// The device's events (log, then outbox) as JSON lines of the wire form.
    Export,
    /// How many of the account's events on this device the server has not accepted yet (every
    /// workspace's; sign-out tells the person before it deletes the local data).
    Unsent,
    /// A list as it was at `at_ms` (ms since the epoch, compared with the physical time of
    /// the events' stamps), computed by replaying the log and the outbox: read-only.
    AsOf { list_id: String, at_ms: u64 },
    /// A command. `command_id` is minted by the page (a UUID): a command id the worker has
    /// already answered is answered again with the recorded reply, never run twice
    /// (DESIGN.md rule 18).
    Command {
        command_id: String,
        command: Command,
    },
}

/// TodoMVC's filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    #[default]
    All,
    Active,
    Completed,
}

impl Filter {
    /// The URL segment of this filter (`""` for All).
    pub fn segment(self) -> &'static str {
        match self {
            Self::All => "",
            Self::Active => "active",
            Self::Completed => "completed",
        }
    }

    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "" => Some(Self::All),
            "active" => Some(Self::Active),
            "completed" => Some(Self::Completed),
            _ => None,
        }
    }

    /// Whether a todo with this completion passes.
    pub fn passes(self, completed: bool) -> bool {
        match self {
            Self::All => true,
            Self::Active => !completed,
            Self::Completed => completed,
        }
    }
}

/// What a user can do. Edits carry `shown`: the stamp of the value the page displayed (the
/// row's `*_hlc`), which the edit replaces (its `bases`, DESIGN.md rule 19); without it the
/// worker uses the value it holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    CreateList {
        list_id: String,
        name: String,
    },
    RenameList {
        list_id: String,
        name: String,
        #[serde(default)]
        shown: Option<String>,
    },
    DeleteList {
        list_id: String,
    },
    /// A new todo at the end of the list, or right after `after` (a todo id) when given.
    /// `due_date` is a calendar date (`YYYY-MM-DD`), resolved by the page when the user
    /// pressed Enter.
    AddTodo {
        todo_id: String,
        list_id: String,
        title: String,
        #[serde(default)]
        due_date: Option<String>,
        #[serde(default)]
        after: Option<String>,
    },
    EditTitle {
        todo_id: String,
        title: String,
        #[serde(default)]
        shown: Option<String>,
    },
    EditNotes {
        todo_id: String,
        notes: String,
        #[serde(default)]
        shown: Option<String>,
    },
    /// Sets (`Some`) or clears (`None`) the due date.
    SetDueDate {
        todo_id: String,
        due_date: Option<String>,
        #[serde(default)]
        shown: Option<String>,
    },
    /// Completes (`true`) or reopens (`false`) a todo.
    SetCompleted {
        todo_id: String,
        completed: bool,
        #[serde(default)]
        shown: Option<String>,
    },
    /// Every live todo of the list to `completed`, in one transaction.
    ToggleAll {
        list_id: String,
        completed: bool,
    },
    DeleteTodo {
        todo_id: String,
    },
    /// Deletes every completed todo of the list, in one transaction.
    ClearCompleted {
        list_id: String,
    },
    /// Moves a todo within its list to just before `before` (a todo id), or to the end when
    /// `before` is `None`.
    MoveTodo {
        todo_id: String,
        #[serde(default)]
        before: Option<String>,
    },
    /// Moves a todo to the end of another list.
    MoveToList {
        todo_id: String,
        list_id: String,
    },
    /// Undoes every delete of the list this device has seen (its todos come back with it).
    RestoreList {
        list_id: String,
    },
    /// Undoes every delete of the todo this device has seen.
    RestoreTodo {
        todo_id: String,
    },
    /// Ends a field's conflict (DESIGN.md rule 19): records `value` (JSON: a chosen competing
    /// value or one typed over them) as an edit whose bases name every competing value in
    /// `seen` (their stamps, as the dialog listed them). Refused when a competing value the
    /// user did not see has arrived meanwhile, so none is superseded unseen.
    ResolveConflict {
        item_id: String,
        field: String,
        value: String,
        seen: Vec<String>,
    },
    /// Takes back this device's newest undoable action in the workspace (a many-item command
    /// is one), recording compensating events (DESIGN.md rule 19). Refused, naming who, when
    /// someone has changed it since.
    Undo,
    /// Takes back the undo done last.
    Redo,
    /// Names this device (shown to others in conflicts, history and the Trash). `if_unnamed`:
    /// only when it has no name yet (the page's default from the browser and OS).
    NameDevice {
        name: String,
        #[serde(default)]
        if_unnamed: bool,
    },
}

impl Command {
    /// The command's name on the wire (for logs and messages).
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateList { .. } => "create_list",
            Self::RenameList { .. } => "rename_list",
            Self::DeleteList { .. } => "delete_list",
            Self::AddTodo { .. } => "add_todo",
            Self::EditTitle { .. } => "edit_title",
            Self::EditNotes { .. } => "edit_notes",
            Self::SetDueDate { .. } => "set_due_date",
            Self::SetCompleted { .. } => "set_completed",
            Self::ToggleAll { .. } => "toggle_all",
            Self::DeleteTodo { .. } => "delete_todo",
            Self::ClearCompleted { .. } => "clear_completed",
            Self::MoveTodo { .. } => "move_todo",
            Self::MoveToList { .. } => "move_to_list",
            Self::RestoreList { .. } => "restore_list",
            Self::RestoreTodo { .. } => "restore_todo",
            Self::ResolveConflict { .. } => "resolve_conflict",
            Self::NameDevice { .. } => "name_device",
            Self::Undo => "undo",
            Self::Redo => "redo",
        }
    }
}

/// A live list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub name: String,
    /// The stamp of the shown name (an edit's `shown`).
    pub name_hlc: String,
    /// The stamp of its creation: lists show oldest first (then by id).
    pub created_hlc: String,
    /// Fields in conflict (its name).
    #[serde(default)]
    pub conflicts: u64,
}

/// One competing value of a field in conflict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Competing {
    /// The value as JSON (`"text"`, `true`, `null`, `"2026-12-01"`, a list id for `list`).
    pub value: String,
    /// The edit's stamp (what [`Command::ResolveConflict`]'s `seen` names).
    pub hlc: String,
    pub device_id: String,
    /// The device's name, when it has one.
    pub device_name: Option<String>,
    /// The author's wall time when the edit was made (ms since the epoch).
    pub at: i64,
    /// Whether this is the value shown now (the newest edit nobody superseded).
    pub current: bool,
    /// The account that made it, by name (see [`HistoryEntry::person`]).
    #[serde(default)]
    pub person: Option<String>,
}

/// A field of an item with live conflicts: the current value first, then the others, newest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    /// `title`, `notes`, `due_date`, `completed`, `list` (a todo's) or `name` (a list's).
    pub field: String,
    pub values: Vec<Competing>,
}

/// One field an event changed: JSON values, as in [`Competing`]; `field` is also `deleted`
/// (`true`: deleted, `false`: restored) and `position` (a reorder).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    /// What the author replaced (several when the edit resolved a conflict; none for a
    /// creation).
    pub old: Vec<String>,
    pub new: String,
}

/// One event of an item's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub event_id: String,
    pub event_type: String,
    pub hlc: String,
    /// The stamp's physical time (ms): what "View as of" replays up to.
    pub hlc_ms: u64,
    /// The author's wall time when it was made (ms since the epoch).
    pub at: i64,
    pub device_id: String,
    pub device_name: Option<String>,
    /// The account that made it, by name (none for events from before accounts and for this
    /// device's own until another device's pull names them).
    #[serde(default)]
    pub person: Option<String>,
    /// Still in this device's outbox (not yet accepted by the server).
    pub pending: bool,
    pub changes: Vec<FieldChange>,
}

/// Which events the inspector lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTable {
    /// Accepted by the server (with their `seq`).
    #[default]
    Log,
    /// This device's, not yet accepted.
    Outbox,
    /// Refused by the server for good, with the reason (DESIGN.md rule 13).
    SetAside,
}

/// A database of the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Database {
    #[default]
    Events,
    Views,
}

/// One event as the inspector shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectedEvent {
    pub seq: Option<u64>,
    pub event_id: String,
    pub workspace_id: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub version: u64,
    pub hlc: String,
    pub device_id: String,
    pub created_at: i64,
    pub data: String,
    /// Why it was set aside.
    pub reason: Option<String>,
}

/// The store as the inspector shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    pub device_id: String,
    /// The clock now (`hlc_now()`).
    pub clock: String,
    /// The clock's offset from the device's wall clock, re-estimated from the server's time.
    pub clock_offset_ms: i64,
    /// The workspace, the server log synced with, the cursor (events stored up to this seq)
    /// and the views' checkpoint.
    pub workspace_id: String,
    pub server_log_id: Option<String>,
    pub cursor: u64,
    pub checkpoint: u64,
    pub logged: u64,
    pub pending: u64,
    pub set_aside: u64,
    pub projection_version: i64,
    pub owner_epoch: u64,
    pub undo_steps: u64,
}

/// A page of a console query's rows: every value as text (`NULL` for null).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPage {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// More rows follow (ask again with a greater `offset`).
    pub more: bool,
}

/// A device's readable name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceName {
    pub device_id: String,
    pub name: String,
}

/// A deleted list, or a todo that is deleted or hidden because its list is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashRow {
    /// `list` or `todo`.
    pub kind: String,
    pub id: String,
    /// The list's name or the todo's title.
    pub title: String,
    /// A todo's list, and its name.
    pub list_id: Option<String>,
    pub list_name: Option<String>,
    /// Whether the item itself is deleted (a todo may only be hidden by its deleted list).
    pub deleted: bool,
    /// Whether a todo's list is deleted.
    pub list_deleted: bool,
    /// The latest delete that hides it: stamp, the author's wall time (ms) and device.
    pub deleted_hlc: String,
    pub deleted_at: i64,
    pub device_id: String,
    /// That device's name, when it has one.
    #[serde(default)]
    pub device_name: Option<String>,
}

/// A todo as the list pane and the detail show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TodoRow {
    pub id: String,
    pub list_id: String,
    pub title: String,
    pub title_hlc: String,
    pub notes: String,
    pub notes_hlc: String,
    pub completed: bool,
    pub completed_hlc: String,
    pub due_date: Option<String>,
    pub due_date_hlc: String,
    /// The order key within the list (rows sort by position, then id).
    pub position: String,
    /// Fields with unresolved conflicting edits whose values differ, of those the user sees
    /// (all but the position).
    pub conflicts: u64,
    pub deleted: bool,
}

/// How many live todos of a list are active and completed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub active: u64,
    pub completed: u64,
}

/// A list's counts, in a change set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCounts {
    pub list_id: String,
    pub counts: Counts,
}

/// What a list page shows, read at once: the live lists with every list's counts, and one
/// list's live todos in display order (filters are applied on the page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSnapshot {
    pub lists: Vec<ListRow>,
    pub list_counts: Vec<ListCounts>,
    /// The list shown: the one asked for, or the workspace's first when none was.
    pub list_id: Option<String>,
    /// Whether that list exists here (a list made offline elsewhere may not yet).
    pub list_known: bool,
    pub todos: Vec<TodoRow>,
}

/// What changed in the views since the last change set, row by row (never a whole list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Too much changed to list (a first download, a rebuild): the page reads its list again.
    /// The other fields are then empty.
    pub reset: bool,
    /// Lists created or renamed (as they are now).
    pub lists: Vec<ListRow>,
    /// Lists deleted.
    pub removed_lists: Vec<String>,
    /// Todos created or changed (as they are now; a moved todo carries its new list).
    pub todos: Vec<TodoRow>,
    /// Todos deleted (or gone with their list).
    pub removed_todos: Vec<String>,
    /// The counts of every list touched.
    pub counts: Vec<ListCounts>,
    /// What "Undo" and "Redo" would now take back, after a command of this device (carried
    /// here so the page needs no request after each change; `None`: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<UndoLabels>,
}

/// The labels of what "Undo" and "Redo" would take back (`None`: nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoLabels {
    pub undo: Option<String>,
    pub redo: Option<String>,
}

impl Changes {
    /// Folds `later` into this change set, as if both had been applied in order: a row's
    /// later state wins, a removal drops an earlier upsert of the row and a later upsert
    /// (a restore) cancels an earlier removal; `reset` wins over everything. (The owner
    /// batches change sets for other tabs this way, docs/protocol.md "Several tabs".)
    pub fn merge(&mut self, later: Changes) {
        if self.reset || later.reset {
            *self = Changes {
                reset: true,
                undo: later.undo.or(self.undo.take()),
                ..Changes::default()
            };
            return;
        }
        merge_rows(
            (&mut self.lists, &mut self.removed_lists),
            (later.lists, later.removed_lists),
            |l| &l.id,
        );
        merge_rows(
            (&mut self.todos, &mut self.removed_todos),
            (later.todos, later.removed_todos),
            |t| &t.id,
        );
        for counts in later.counts {
            match self.counts.iter_mut().find(|c| c.list_id == counts.list_id) {
                Some(c) => *c = counts,
                None => self.counts.push(counts),
            }
        }
        if later.undo.is_some() {
            self.undo = later.undo;
        }
    }

    /// Whether rows changed (not only the undo labels): the page re-renders only then.
    pub fn rows_changed(&self) -> bool {
        self.reset
            || !self.lists.is_empty()
            || !self.removed_lists.is_empty()
            || !self.todos.is_empty()
            || !self.removed_todos.is_empty()
            || !self.counts.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        !self.rows_changed() && self.undo.is_none()
    }
}

/// Upserts and removals of rows keyed by id, `later` applied after `earlier`: an id ends in
/// at most one of the two (the later fact about it wins).
fn merge_rows<R>(
    earlier: (&mut Vec<R>, &mut Vec<String>),
    later: (Vec<R>, Vec<String>),
    id: impl Fn(&R) -> &String,
) {
    let (rows, removed) = earlier;
    let (later_rows, later_removed) = later;
    rows.retain(|r| !later_removed.contains(id(r)));
    for gone in later_removed {
        if !removed.contains(&gone) {
            removed.push(gone);
        }
    }
    for row in later_rows {
        removed.retain(|r| r != id(&row));
        match rows.iter_mut().find(|r| id(r) == id(&row)) {
            Some(r) => *r = row,
            None => rows.push(row),
        }
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Lists {
        lists: Vec<ListRow>,
    },
    Snapshot(ListSnapshot),
    Todos {
        todos: Vec<TodoRow>,
        counts: Counts,
    },
    Counts {
        counts: Counts,
    },
    Todo {
        todo: Option<Box<TodoRow>>,
    },
    Conflicts {
        fields: Vec<FieldConflict>,
    },
    Devices {
        devices: Vec<DeviceName>,
        this_device: String,
    },
    History {
        entries: Vec<HistoryEntry>,
    },
    InspectState(StoreState),
    InspectEvents {
        events: Vec<InspectedEvent>,
        more: bool,
    },
    Query(QueryPage),
    /// The views were rebuilt from `events` events.
    Rebuilt {
        events: u64,
    },
    Export {
        lines: String,
        events: u64,
    },
    Unsent {
        events: u64,
    },
    /// The labels of what "Undo" and "Redo" would take back (`None`: nothing).
    UndoState {
        undo: Option<String>,
        redo: Option<String>,
    },
    /// The list then (`None`: it did not exist yet) and its live todos then.
    AsOf {
        list: Option<ListRow>,
        deleted: bool,
        todos: Vec<TodoRow>,
    },
    /// The Trash, most recently deleted first; `more` when it holds more than were listed.
    Trash {
        items: Vec<TrashRow>,
        more: bool,
    },
    /// The command's events are committed to the outbox (DESIGN.md rule 16); `events` is how
    /// many (0 when it changed nothing). Its change set was sent just before.
    Done {
        events: u64,
    },
    /// The domain refused the command (empty title, too long, a deleted item): nothing was
    /// recorded. `reason` is for the user.
    Refused {
        reason: String,
    },
    /// The request could not be served (a malformed id, storage failed): nothing was recorded.
    Failed {
        reason: String,
    },
}

/// What the user sees of sync (CONTRACT.md `data-sync-state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    #[default]
    Connecting,
    Online,
    Syncing,
    Offline,
    Error,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Syncing => "syncing",
            Self::Offline => "offline",
            Self::Error => "error",
        }
    }
}

/// The sync status the page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub state: SyncState,
    /// Events waiting in the outbox.
    pub pending: u64,
    /// When the last push or pull got through (ms since the epoch, the device's clock).
    pub last_synced_ms: Option<u64>,
    /// What failed, while it lasts.
    pub error: Option<String>,
    /// Something the user should know beside the state (a corrected clock, a set-aside event).
    pub notice: Option<String>,
    /// The server refused this workspace's sync for good until something changes (DESIGN.md
    /// rule 23): the outbox is kept.
    #[serde(default)]
    pub denied: Option<Denied>,
}

/// Why the server stopped a workspace's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Denied {
    /// The session ended (expired, signed out elsewhere, revoked): sign in again.
    SignedOut,
    /// The account is no longer a member of the workspace (or it was deleted).
    Removed,
    /// The account may only read the workspace now (made a reader) and this device holds
    /// changes it wrote before: they stay on the device, unsent; pulls go on.
    ReadOnly,
}

/// Why the worker cannot serve the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// The browser gives no OPFS here (some private windows).
    NoStorage,
    /// The databases could not be opened or are damaged.
    Storage,
}

/// A message from the worker to the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The store is served: by this tab's worker (`owner`) or by another tab's, through this
    /// one. Sent when that starts and whenever the owner changes: the page sends its `open`,
    /// its network state and every request without a reply again (docs/protocol.md "Several
    /// tabs").
    Serving {
        owner: bool,
        /// The store lives in memory only (no file storage in this window, DESIGN.md rule
        /// 18's exception): edits are kept only until they are sent.
        #[serde(default)]
        memory: bool,
    },
    /// The worker cannot serve; `reason` says why, for a banner.
    Unavailable {
        kind: Unavailable,
        reason: String,
        /// The log's file is damaged (not a database, or corrupt): retrying cannot help; the
        /// page offers to start afresh from the server. (A field, not a new `kind`: a page of
        /// an older build still reads the message.)
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        damaged: bool,
    },
    /// The store is open (answer to [`PageMessage::Open`]): its cursor in the server log.
    Ready {
        cursor: u64,
        device_id: String,
        /// The device clock's stamp now, read through the SQL function `hlc_now()`.
        clock: String,
    },
    /// The local views have reached what the server rendered (or never will soon: the page
    /// switches anyway and says so with `behind`).
    CaughtUp {
        behind: bool,
    },
    /// A first download's progress (events stored so far of the server's head).
    Progress {
        stored: u64,
        head: u64,
        #[serde(default)]
        workspace_id: Option<String>,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
    /// What changed, in one workspace (`None`: any; a page shows only its own).
    Changed {
        changes: Changes,
        #[serde(default)]
        workspace_id: Option<String>,
    },
    /// A rebuild of the views is this far (events replayed of `total`).
    Rebuilding {
        done: u64,
        total: u64,
    },
    /// A workspace's sync status.
    Sync {
        status: SyncStatus,
        #[serde(default)]
        workspace_id: Option<String>,
    },
    /// Code of another build was met (docs/protocol.md, "Builds"): this worker's own, when the
    /// page that started it is of another build (the worker serves nothing), or another tab's.
    /// A page older than `build` reloads; a newer one waits for the older tab to go.
    OtherBuild {
        build: String,
    },
    /// This worker serves nothing more (it recovered from a restored server into new files):
    /// the page ends it and starts another, which opens them.
    Restart,
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable message {text:?}: {source}")]
pub struct DecodeError {
    text: String,
    #[source]
    source: serde_json::Error,
}

macro_rules! json_codec {
    ($ty:ty) => {
        impl $ty {
            /// Encodes this message as its JSON text.
            pub fn to_json(&self) -> String {
                // Serializing these plain types cannot fail (no maps with non-string keys).
                serde_json::to_string(self).unwrap_or_default()
            }

            /// Decodes a message from its JSON text.
            pub fn from_json(text: &str) -> Result<Self, DecodeError> {
                serde_json::from_str(text).map_err(|source| DecodeError {
                    text: text.chars().take(200).collect(),
                    source,
                })
            }
        }
    };
}

/// A message between tabs' workers on the BroadcastChannel `tandem-tabs` (docs/protocol.md
/// "Several tabs"): relays send their pages' messages to the owner, the owner answers one tab
/// or all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TabMessage {
    /// A relay asks who owns the store (the owner answers [`TabMessage::Owner`]); `build`:
    /// its build ([`crate::BUILD`]; empty from a build before builds were named).
    Hello {
        tab: String,
        #[serde(default)]
        build: String,
    },
    /// The worker of tab `tab` owns the store and serves, as the `epoch`th owner (counted in
    /// the store: a later owner's epoch is greater, so a late message of an earlier owner is
    /// told apart and ignored).
    Owner {
        tab: String,
        epoch: u64,
        /// Its store is in memory only.
        #[serde(default)]
        memory: bool,
        /// Its build: a relay follows only an owner of its own build.
        #[serde(default)]
        build: String,
    },
    /// A page's message, relayed for tab `from` to the owner `owner` (another owner ignores
    /// it: after a handoff the page sends it again, in order).
    ToOwner {
        from: String,
        owner: String,
        message: PageMessage,
    },
    /// The owner's message for one tab's page.
    ToTab {
        tab: String,
        epoch: u64,
        message: WorkerMessage,
    },
    /// The owner's message for every other tab's page (an owner that cannot open the store
    /// says so with epoch 0).
    ToAll { epoch: u64, message: WorkerMessage },
}

json_codec!(PageMessage);
json_codec!(WorkerMessage);
json_codec!(TabMessage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let msg = PageMessage::Request {
            id: 7,
            request: Request::Command {
                command_id: "c".into(),
                command: Command::AddTodo {
                    todo_id: "t".into(),
                    list_id: "l".into(),
                    title: "milk".into(),
                    due_date: None,
                    after: None,
                },
            },
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"request","id":7,"request":{"type":"command","command_id":"c","command":{"type":"add_todo","todo_id":"t","list_id":"l","title":"milk","due_date":null,"after":null}}}"#
        );
        assert_eq!(PageMessage::from_json(&msg.to_json()).unwrap(), msg);
        let reply = WorkerMessage::Reply {
            id: 7,
            reply: Reply::Done { events: 1 },
        };
        assert_eq!(
            reply.to_json(),
            r#"{"type":"reply","id":7,"reply":{"type":"done","events":1}}"#
        );
        assert_eq!(WorkerMessage::from_json(&reply.to_json()).unwrap(), reply);
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let msg = PageMessage::from_json(
            r#"{"type":"request","id":1,"request":{"type":"command","command_id":"c","command":{"type":"edit_title","todo_id":"t","title":"x"}}}"#,
        )
        .unwrap();
        let PageMessage::Request {
            request: Request::Command { command, .. },
            ..
        } = msg
        else {
            panic!("not a command: {msg:?}");
        };
        assert_eq!(
            command,
            Command::EditTitle {
                todo_id: "t".into(),
                title: "x".into(),
                shown: None
            }
        );
    }

    #[test]
    fn unknown_messages_are_a_typed_error() {
        let err = PageMessage::from_json(r#"{"type":"drop_tables"}"#).unwrap_err();
        assert!(err.to_string().contains("drop_tables"), "{err}");
    }

    fn todo(id: &str, title: &str) -> TodoRow {
        TodoRow {
            id: id.into(),
            title: title.into(),
            ..TodoRow::default()
        }
    }

    fn ids(rows: &[TodoRow]) -> Vec<(&str, &str)> {
        rows.iter()
            .map(|r| (r.id.as_str(), r.title.as_str()))
            .collect()
    }

    #[test]
    fn merged_change_sets_keep_each_rows_later_fact() {
        let mut batch = Changes {
            todos: vec![todo("a", "1"), todo("b", "1")],
            removed_todos: vec!["c".into()],
            ..Changes::default()
        };
        batch.merge(Changes {
            // a changes again, b goes, c comes back (a restore), d is new.
            todos: vec![todo("a", "2"), todo("c", "2"), todo("d", "1")],
            removed_todos: vec!["b".into()],
            ..Changes::default()
        });
        assert_eq!(ids(&batch.todos), [("a", "2"), ("c", "2"), ("d", "1")]);
        assert_eq!(batch.removed_todos, ["b"]);
        // Removed after an upsert: only the removal stays.
        batch.merge(Changes {
            removed_todos: vec!["a".into(), "b".into()],
            counts: vec![ListCounts {
                list_id: "l".into(),
                counts: Counts::default(),
            }],
            ..Changes::default()
        });
        assert_eq!(ids(&batch.todos), [("c", "2"), ("d", "1")]);
        assert_eq!(batch.removed_todos, ["b", "a"]);
        assert_eq!(batch.counts.len(), 1);
        batch.merge(Changes {
            reset: true,
            ..Changes::default()
        });
        assert_eq!(
            batch,
            Changes {
                reset: true,
                ..Changes::default()
            }
        );
        // Nothing merges into a reset but the reset.
        batch.merge(Changes {
            todos: vec![todo("e", "1")],
            ..Changes::default()
        });
        assert!(batch.reset && batch.todos.is_empty());
    }

    #[test]
    fn merged_change_sets_keep_the_latest_undo_labels() {
        let labels = |undo: &str| UndoLabels {
            undo: Some(undo.into()),
            redo: None,
        };
        let mut batch = Changes {
            undo: Some(labels("Add a")),
            ..Changes::default()
        };
        assert!(!batch.is_empty() && !batch.rows_changed());
        // A later change set without labels (a pull) leaves them; a later command's replace.
        batch.merge(Changes {
            todos: vec![todo("a", "1")],
            ..Changes::default()
        });
        assert_eq!(batch.undo, Some(labels("Add a")));
        batch.merge(Changes {
            undo: Some(labels("Add b")),
            ..Changes::default()
        });
        assert_eq!(batch.undo, Some(labels("Add b")));
        // A reset keeps them: they live in events.db, not the views.
        batch.merge(Changes {
            reset: true,
            ..Changes::default()
        });
        assert!(batch.reset && batch.undo == Some(labels("Add b")));
        // An old page's change set (no field) reads as "unchanged".
        let old: Changes = serde_json::from_str(
            r#"{"reset":false,"lists":[],"removed_lists":[],"todos":[],"removed_todos":[],"counts":[]}"#,
        )
        .unwrap();
        assert_eq!(old.undo, None);
    }

    #[test]
    fn tab_messages_carry_page_and_worker_messages() {
        let msg = TabMessage::ToOwner {
            from: "t1".into(),
            owner: "t0".into(),
            message: PageMessage::SyncNow,
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"to_owner","from":"t1","owner":"t0","message":{"type":"sync_now"}}"#
        );
        assert_eq!(TabMessage::from_json(&msg.to_json()).unwrap(), msg);
        let all = TabMessage::ToAll {
            epoch: 3,
            message: WorkerMessage::Serving {
                owner: false,
                memory: false,
            },
        };
        assert_eq!(TabMessage::from_json(&all.to_json()).unwrap(), all);
    }

    #[test]
    fn filters_are_url_segments() {
        for f in [Filter::All, Filter::Active, Filter::Completed] {
            assert_eq!(Filter::from_segment(f.segment()), Some(f));
        }
        assert_eq!(Filter::from_segment("done"), None);
        assert!(Filter::Active.passes(false) && !Filter::Active.passes(true));
        assert!(Filter::Completed.passes(true) && Filter::All.passes(false));
    }
}
