//! The device's data service: answers the page's queries and commands
//! (`tandem_protocol::data`) against the replica, and gathers the change sets the page
//! applies. No browser API here, so it is tested natively (tests/service.rs); the worker's
//! event loop (browser.rs) feeds it messages.

use tandem_events::decide::{DeviceCommand, DomainError, ListCommand, TodoCommand, TodoEdit};
use tandem_events::domain::DueDate;
use tandem_events::hlc::Stamp;
use tandem_events::ids::{AggregateId, DeviceId, WorkspaceId};
use tandem_events::position;
use tandem_events::undo::UndoError;
use tandem_protocol::data::{
    Changes, Command, FieldChange, Filter, HistoryEntry, ListRow, Reply, Request, StoreState,
    TodoRow, UndoLabels,
};
use tandem_store::changes;
use tandem_store::driver::SharedReplica;
use tandem_store::rusqlite::{self, OptionalExtension};
use tandem_store::{ReplicaError, Step, ViewsError};

/// Why a request could not be served (answered as [`Reply::Failed`], nothing recorded).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Inspect(#[from] tandem_store::inspect::InspectError),
    #[error(transparent)]
    Log(#[from] tandem_store::LogError),
    #[error("malformed {what} {text:?}")]
    Malformed { what: &'static str, text: String },
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Views(#[from] ViewsError),
    #[error("the views failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Why a command was not carried out.
enum Refusal {
    /// The domain said no (shown to the user; recorded with the command id).
    Domain(DomainError),
    /// An undo or redo cannot be done, for the reason given (recorded like a domain refusal).
    Said(String),
    /// The command was made on what the views no longer hold (a competing value arrived
    /// while the user chose): shown to the user, not recorded, so the same command id may
    /// run once the user has looked again.
    Stale(String),
    /// Something else failed (not recorded: sending the command again may work).
    Failed(ServiceError),
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        Self::Failed(e)
    }
}

impl From<ReplicaError> for Refusal {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Domain(d) => Self::Domain(d),
            other => Self::Failed(other.into()),
        }
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// The data service over the device's replica (shared with the sync driver).
pub struct Service {
    replica: SharedReplica,
    workspace: WorkspaceId,
    /// The account only reads this workspace (a reader): every command is refused, none is
    /// recorded (DESIGN.md rule 23: a reader's device writes no events there).
    read_only: std::cell::Cell<bool>,
    /// Told how far a rebuild of the views is (events replayed, of how many).
    on_rebuild: Option<Box<dyn Fn(u64, u64)>>,
}

impl Service {
    /// Starts tracking changes on the replica's views.
    pub fn new(replica: SharedReplica, workspace: WorkspaceId) -> Result<Self, ServiceError> {
        changes::track(replica.borrow().views().connection())?;
        Ok(Self {
            replica,
            workspace,
            read_only: std::cell::Cell::new(false),
            on_rebuild: None,
        })
    }

    /// A reader's service: it answers queries and refuses every command.
    pub fn read_only(self, read_only: bool) -> Self {
        self.read_only.set(read_only);
        self
    }

    /// The account's role changed (a page opened the workspace as a reader, or no longer).
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.set(read_only);
    }

    /// The workspace this service answers for.
    pub fn workspace(&self) -> WorkspaceId {
        self.workspace
    }

    /// Where a rebuild's progress goes (the worker posts it to every page).
    pub fn on_rebuild(&mut self, report: impl Fn(u64, u64) + 'static) {
        self.on_rebuild = Some(Box::new(report));
    }

    /// Answers a query or runs a command. A command's events are committed (with its id)
    /// before this returns.
    pub fn request(&self, request: Request) -> Reply {
        let answer = match request {
            Request::Lists => self.lists(),
            Request::Snapshot { list_id } => self.snapshot(list_id),
            Request::Todos { list_id, filter } => self.todos(&list_id, filter),
            Request::Counts { list_id } => self.counts(&list_id),
            Request::Todo { id } => self.todo(&id),
            Request::Trash => self.trash(),
            Request::Conflicts { id } => self.conflicts(&id),
            Request::Devices => self.devices(),
            Request::History { id } => self.history(&id),
            Request::UndoState => self.undo_state(),
            Request::InspectState => self.inspect_state(),
            Request::InspectEvents {
                table,
                event_type,
                item,
                device,
                offset,
                limit,
            } => self.inspect_events(table, event_type, item, device, offset, limit),
            Request::Query {
                database,
                sql,
                offset,
            } => {
                let result = self.replica.borrow_mut().query(
                    database == tandem_protocol::data::Database::Views,
                    &sql,
                    offset,
                );
                // A console error is the user's to read, not a failure of the store.
                return match result {
                    Ok(page) => Reply::Query(page),
                    Err(e) => Reply::Refused {
                        reason: e.to_string(),
                    },
                };
            }
            Request::RebuildViews => self.rebuild(),
            Request::Export => self.export(),
            Request::Unsent => self
                .replica
                .borrow()
                .pending_len()
                .map(|n| Reply::Unsent { events: n as u64 })
                .map_err(Into::into),
            Request::AsOf { list_id, at_ms } => self.as_of(&list_id, at_ms),
            Request::Command {
                command_id,
                command,
            } => return self.command(&command_id, command),
        };
        answer.unwrap_or_else(|e| Reply::Failed {
            reason: e.to_string(),
        })
    }

    /// What changed in the views since the last call (see `tandem_store::changes`).
    pub fn changes(&self) -> Result<Changes, ServiceError> {
        Ok(changes::take(self.replica.borrow().views().connection())?)
    }

    fn lists(&self) -> Result<Reply, ServiceError> {
        let replica = self.replica.borrow();
        let lists = changes::list_rows(replica.views().connection(), &self.workspace.to_string())?;
        Ok(Reply::Lists { lists })
    }

    fn snapshot(&self, list_id: Option<String>) -> Result<Reply, ServiceError> {
        if let Some(id) = &list_id {
            parse_id("list id", id)?;
        }
        let replica = self.replica.borrow();
        let conn = replica.views().connection();
        Ok(Reply::Snapshot(changes::snapshot(
            conn,
            &self.workspace.to_string(),
            list_id,
        )?))
    }

    fn todos(&self, list_id: &str, filter: Filter) -> Result<Reply, ServiceError> {
        let list = parse_id("list id", list_id)?.to_string();
        let completed = match filter {
            Filter::All => None,
            Filter::Active => Some(false),
            Filter::Completed => Some(true),
        };
        let replica = self.replica.borrow();
        let conn = replica.views().connection();
        Ok(Reply::Todos {
            todos: changes::todo_rows(conn, &list, completed)?,
            counts: changes::counts(conn, &list)?,
        })
    }

    fn counts(&self, list_id: &str) -> Result<Reply, ServiceError> {
        let list = parse_id("list id", list_id)?.to_string();
        let replica = self.replica.borrow();
        Ok(Reply::Counts {
            counts: changes::counts(replica.views().connection(), &list)?,
        })
    }

    fn todo(&self, id: &str) -> Result<Reply, ServiceError> {
        let id = parse_id("todo id", id)?.to_string();
        let replica = self.replica.borrow();
        Ok(Reply::Todo {
            todo: changes::todo_row(replica.views().connection(), &id)?.map(Box::new),
        })
    }

    fn trash(&self) -> Result<Reply, ServiceError> {
        let replica = self.replica.borrow();
        let (items, more) =
            changes::trash(replica.views().connection(), &self.workspace.to_string())?;
        Ok(Reply::Trash { items, more })
    }

    fn conflicts(&self, id: &str) -> Result<Reply, ServiceError> {
        let id = parse_id("item id", id)?.to_string();
        let replica = self.replica.borrow();
        let conn = replica.views().connection();
        let mut fields = changes::conflicts(conn, &self.workspace.to_string(), &id)?;
        for field in &mut fields {
            for value in &mut field.values {
                value.person = replica.log().person_of_stamp(&id, &value.hlc)?;
            }
        }
        Ok(Reply::Conflicts { fields })
    }

    fn devices(&self) -> Result<Reply, ServiceError> {
        let replica = self.replica.borrow();
        let conn = replica.views().connection();
        Ok(Reply::Devices {
            devices: changes::devices(conn, &self.workspace.to_string())?,
            this_device: replica.log().device_id().to_string(),
        })
    }

    fn history(&self, id: &str) -> Result<Reply, ServiceError> {
        let id = parse_id("item id", id)?;
        let replica = self.replica.borrow();
        let names = changes::devices(replica.views().connection(), &self.workspace.to_string())?;
        let people = replica.log().people_of(id)?;
        let mut entries: Vec<HistoryEntry> = replica
            .history(id)?
            .into_iter()
            .map(|(e, pending)| {
                let device_id = e.device_id.to_string();
                HistoryEntry {
                    event_id: e.event_id.to_string(),
                    event_type: e.event_type.to_string(),
                    hlc: e.hlc.encode(),
                    hlc_ms: e.hlc.ms,
                    at: e.created_at,
                    device_name: names
                        .iter()
                        .find(|n| n.device_id == device_id)
                        .map(|n| n.name.clone()),
                    person: people.get(&e.event_id.to_string()).cloned(),
                    device_id,
                    pending,
                    changes: e
                        .changes
                        .into_iter()
                        .map(|c| FieldChange {
                            field: c.field.to_string(),
                            old: c.old,
                            new: c.new,
                        })
                        .collect(),
                }
            })
            .collect();
        entries.reverse();
        Ok(Reply::History { entries })
    }

    fn inspect_state(&self) -> Result<Reply, ServiceError> {
        use tandem_store::inspect::count;
        let replica = self.replica.borrow();
        let log = replica.log();
        let conn = log.connection();
        let clock: String = conn.query_row("SELECT hlc_now()", [], |r| r.get(0))?;
        let epoch: i64 =
            conn.query_row("SELECT coalesce(max(epoch), 0) FROM ownership", [], |r| {
                r.get(0)
            })?;
        Ok(Reply::InspectState(StoreState {
            device_id: log.device_id().to_string(),
            clock,
            clock_offset_ms: log.clock_state().offset_ms,
            workspace_id: self.workspace.to_string(),
            server_log_id: log.server_log_id(self.workspace)?,
            cursor: replica.cursor(self.workspace)?,
            checkpoint: replica.views().checkpoint(self.workspace)?,
            logged: count(conn, "events")?,
            pending: count(conn, "outbox")?,
            set_aside: count(conn, "set_aside")?,
            projection_version: tandem_store::PROJECTION_VERSION,
            owner_epoch: epoch.max(0) as u64,
            undo_steps: count(conn, "undo_steps")?,
        }))
    }

    fn inspect_events(
        &self,
        table: tandem_protocol::data::EventTable,
        event_type: Option<String>,
        item: Option<String>,
        device: Option<String>,
        offset: u64,
        limit: u64,
    ) -> Result<Reply, ServiceError> {
        let blank = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let filter = tandem_store::inspect::EventFilter {
            event_type: blank(event_type),
            item: blank(item),
            device: blank(device),
        };
        let replica = self.replica.borrow();
        let (events, more) = tandem_store::inspect::events(
            replica.log().connection(),
            table,
            &filter,
            offset,
            limit,
        )?;
        Ok(Reply::InspectEvents { events, more })
    }

    fn rebuild(&self) -> Result<Reply, ServiceError> {
        let report = self.on_rebuild.as_ref();
        let events = self.replica.borrow_mut().rebuild_views(|p| {
            if let Some(report) = report {
                report(p.done, p.total);
            }
        })?;
        Ok(Reply::Rebuilt { events })
    }

    fn export(&self) -> Result<Reply, ServiceError> {
        let (lines, events) = self.replica.borrow().export()?;
        Ok(Reply::Export { lines, events })
    }

    fn undo_state(&self) -> Result<Reply, ServiceError> {
        let UndoLabels { undo, redo } = self.undo_labels()?;
        Ok(Reply::UndoState { undo, redo })
    }

    /// What "Undo" and "Redo" would take back now (sent with a command's change set).
    pub fn undo_labels(&self) -> Result<UndoLabels, ServiceError> {
        let (undo, redo) = self.replica.borrow().undo_labels(self.workspace)?;
        Ok(UndoLabels { undo, redo })
    }

    /// Runs an undo or a redo; a refusal (nothing to undo, changed since) is recorded with
    /// the command id like a domain refusal, and says who changed what.
    fn undo_or_redo(&self, command_id: &str, redo: bool) -> Reply {
        let done = |events: usize| {
            reply_json(&Reply::Done {
                events: events as u64,
            })
        };
        let result = {
            let mut replica = self.replica.borrow_mut();
            if redo {
                replica.redo(self.workspace, Some((command_id, &done)))
            } else {
                replica.undo(self.workspace, Some((command_id, &done)))
            }
        };
        let reason = match result {
            Ok((_, events)) => {
                return Reply::Done {
                    events: events as u64,
                }
            }
            Err(ReplicaError::NothingToUndo) => "Nothing to undo".to_string(),
            Err(ReplicaError::NothingToRedo) => "Nothing to redo".to_string(),
            Err(ReplicaError::Undo(e)) => self.undo_refusal(redo, &e),
            Err(other) => {
                return Reply::Failed {
                    reason: other.to_string(),
                }
            }
        };
        self.refuse(command_id, Refusal::Said(reason))
    }

    /// Why an undo (or redo) cannot be done, naming the device by its name.
    fn undo_refusal(&self, redo: bool, e: &UndoError) -> String {
        let what = if redo { "redo" } else { "undo" };
        let who = |device: &DeviceId| -> String {
            let replica = self.replica.borrow();
            if *device == replica.log().device_id() {
                return "you".into();
            }
            let names = changes::devices(replica.views().connection(), &self.workspace.to_string())
                .unwrap_or_default();
            let id = device.to_string();
            names
                .into_iter()
                .find(|n| n.device_id == id)
                .map_or_else(|| "another device".to_string(), |n| n.name)
        };
        match e {
            UndoError::ChangedSince {
                what: field,
                device,
            } => {
                format!("Cannot {what}: {} changed the {field} since", who(device))
            }
            UndoError::Deleted { device } => {
                format!("Cannot {what}: {} deleted it since", who(device))
            }
            UndoError::AlreadyUndone(why) => format!("Nothing to {what}: {why}"),
            other => format!("Cannot {what}: {other}"),
        }
    }

    fn as_of(&self, list_id: &str, at_ms: u64) -> Result<Reply, ServiceError> {
        let list = parse_id("list id", list_id)?;
        let (row, todos) = self
            .replica
            .borrow()
            .list_as_of(self.workspace, list, at_ms)?;
        Ok(Reply::AsOf {
            deleted: row.as_ref().is_some_and(|l| l.deleted),
            list: row.map(|l| ListRow {
                id: l.list_id.to_string(),
                name: l.name,
                name_hlc: l.name_hlc.encode(),
                created_hlc: l.created_hlc.encode(),
                conflicts: 0,
            }),
            todos: todos
                .into_iter()
                .map(|t| TodoRow {
                    id: t.todo_id.to_string(),
                    list_id: t.list_id.to_string(),
                    title: t.title,
                    title_hlc: t.title_hlc.encode(),
                    notes: t.notes,
                    notes_hlc: t.notes_hlc.encode(),
                    completed: t.completed,
                    completed_hlc: t.completed_hlc.encode(),
                    due_date: t.due_date,
                    due_date_hlc: t.due_date_hlc.encode(),
                    position: t.position,
                    conflicts: 0,
                    deleted: false,
                })
                .collect(),
        })
    }

    fn command(&self, command_id: &str, command: Command) -> Reply {
        if self.read_only.get() {
            return Reply::Refused {
                reason: "You can read this workspace but not change it.".into(),
            };
        }
        if let Err(e) = uuid::Uuid::parse_str(command_id) {
            return Reply::Failed {
                reason: format!("malformed command id {command_id:?}: {e}"),
            };
        }
        match self.replica.borrow().command_reply(command_id) {
            Ok(Some(text)) => {
                return serde_json::from_str(&text).unwrap_or_else(|e| Reply::Failed {
                    reason: format!(
                        "the recorded reply of command {command_id} is unreadable: {e}"
                    ),
                })
            }
            Ok(None) => {}
            Err(e) => {
                return Reply::Failed {
                    reason: e.to_string(),
                }
            }
        }
        // Recorded by another store (one in memory, replaced) and synced here: done already.
        match self.replica.borrow().command_events(command_id) {
            Ok(Some(events)) => {
                return Reply::Done {
                    events: events as u64,
                }
            }
            Ok(None) => {}
            Err(e) => {
                return Reply::Failed {
                    reason: e.to_string(),
                }
            }
        }
        match command {
            Command::Undo => return self.undo_or_redo(command_id, false),
            Command::Redo => return self.undo_or_redo(command_id, true),
            _ => {}
        }
        let label = undo_label(&command);
        let steps = match self.steps(command) {
            Ok(steps) => steps,
            Err(refusal) => return self.refuse(command_id, refusal),
        };
        let done = |events: usize| {
            reply_json(&Reply::Done {
                events: events as u64,
            })
        };
        let result = self.replica.borrow_mut().execute_undoable(
            self.workspace,
            steps,
            Some((command_id, &done)),
            label,
        );
        match result {
            Ok(events) => Reply::Done {
                events: events.len() as u64,
            },
            Err(e) => self.refuse(command_id, e.into()),
        }
    }

    /// The reply to a command not carried out; a domain refusal is recorded with its id.
    fn refuse(&self, command_id: &str, refusal: Refusal) -> Reply {
        match refusal {
            Refusal::Domain(_) | Refusal::Said(_) => {
                let reason = match refusal {
                    Refusal::Domain(e) => e.to_string(),
                    Refusal::Said(reason) => reason,
                    _ => String::new(),
                };
                let reply = Reply::Refused { reason };
                match self
                    .replica
                    .borrow_mut()
                    .record_refusal(command_id, &reply_json(&reply))
                {
                    Ok(()) => reply,
                    Err(e) => Reply::Failed {
                        reason: e.to_string(),
                    },
                }
            }
            Refusal::Stale(reason) => Reply::Refused { reason },
            Refusal::Failed(e) => Reply::Failed {
                reason: e.to_string(),
            },
        }
    }

    /// The domain steps of a command, against the views as they are now (which items a
    /// many-item command touches, where a new position falls).
    fn steps(&self, command: Command) -> Result<Vec<Step>, Refusal> {
        let edit = |todo_id: &str, edit: TodoEdit, shown: Option<String>| {
            Ok::<_, Refusal>(vec![Step::Todo(
                parse_id("todo id", todo_id)?,
                TodoCommand::Edit {
                    edit,
                    resolving: false,
                    shown: parse_stamp(shown)?,
                },
            )])
        };
        match command {
            Command::CreateList { list_id, name } => Ok(vec![Step::List(
                parse_id("list id", &list_id)?,
                ListCommand::Create { name },
            )]),
            Command::RenameList {
                list_id,
                name,
                shown,
            } => Ok(vec![Step::List(
                parse_id("list id", &list_id)?,
                ListCommand::Rename {
                    name,
                    resolving: false,
                    shown: parse_stamp(shown)?,
                },
            )]),
            Command::DeleteList { list_id } => Ok(vec![Step::List(
                parse_id("list id", &list_id)?,
                ListCommand::Delete,
            )]),
            Command::AddTodo {
                todo_id,
                list_id,
                title,
                due_date,
                after,
            } => {
                let list = parse_id("list id", &list_id)?;
                let position = match after {
                    Some(after) => {
                        let after = parse_id("todo id", &after)?;
                        match self.position_of(after)? {
                            Some(at) => {
                                let next = self.next_position(list, Some(&at))?;
                                position::between(Some(&at), next.as_deref())
                            }
                            // Gone meanwhile: at the end.
                            None => position::between(self.last_position(list)?.as_deref(), None),
                        }
                    }
                    None => position::between(self.last_position(list)?.as_deref(), None),
                }
                .map_err(|e| Refusal::Domain(e.into()))?;
                Ok(vec![Step::Todo(
                    parse_id("todo id", &todo_id)?,
                    TodoCommand::Create {
                        list_id: list,
                        title,
                        position,
                        due_date: parse_due(due_date)?,
                    },
                )])
            }
            Command::EditTitle {
                todo_id,
                title,
                shown,
            } => edit(&todo_id, TodoEdit::Title(title), shown),
            Command::EditNotes {
                todo_id,
                notes,
                shown,
            } => edit(&todo_id, TodoEdit::Notes(notes), shown),
            Command::SetDueDate {
                todo_id,
                due_date,
                shown,
            } => edit(&todo_id, TodoEdit::DueDate(parse_due(due_date)?), shown),
            Command::SetCompleted {
                todo_id,
                completed,
                shown,
            } => edit(&todo_id, TodoEdit::Completed(completed), shown),
            Command::ToggleAll { list_id, completed } => {
                let list = parse_id("list id", &list_id)?;
                self.todo_ids(list, Some(!completed))?
                    .into_iter()
                    .map(|id| {
                        Ok(Step::Todo(
                            id,
                            TodoCommand::Edit {
                                edit: TodoEdit::Completed(completed),
                                resolving: false,
                                shown: None,
                            },
                        ))
                    })
                    .collect()
            }
            Command::DeleteTodo { todo_id } => Ok(vec![Step::Todo(
                parse_id("todo id", &todo_id)?,
                TodoCommand::Delete,
            )]),
            Command::ClearCompleted { list_id } => {
                let list = parse_id("list id", &list_id)?;
                Ok(self
                    .todo_ids(list, Some(true))?
                    .into_iter()
                    .map(|id| Step::Todo(id, TodoCommand::Delete))
                    .collect())
            }
            Command::MoveTodo { todo_id, before } => {
                let id = parse_id("todo id", &todo_id)?;
                let list = self.list_of(id)?;
                let position = match before {
                    Some(before) => {
                        let before = parse_id("todo id", &before)?;
                        let at = self.position_of(before)?;
                        let prev = self.previous_position(list, id, at.as_deref())?;
                        position::between(prev.as_deref(), at.as_deref())
                    }
                    None => position::between(self.last_position_but(list, id)?.as_deref(), None),
                }
                .map_err(|e| Refusal::Domain(e.into()))?;
                edit(&todo_id, TodoEdit::Position(position), None)
            }
            Command::RestoreList { list_id } => Ok(vec![Step::List(
                parse_id("list id", &list_id)?,
                ListCommand::Restore,
            )]),
            Command::RestoreTodo { todo_id } => Ok(vec![Step::Todo(
                parse_id("todo id", &todo_id)?,
                TodoCommand::Restore,
            )]),
            Command::MoveToList { todo_id, list_id } => {
                let list = parse_id("list id", &list_id)?;
                let position = position::between(self.last_position(list)?.as_deref(), None)
                    .map_err(|e| Refusal::Domain(e.into()))?;
                Ok(vec![Step::Todo(
                    parse_id("todo id", &todo_id)?,
                    TodoCommand::MoveToList {
                        list_id: list,
                        position,
                        shown_list: None,
                        shown_position: None,
                        resolving: false,
                    },
                )])
            }
            Command::ResolveConflict {
                item_id,
                field,
                value,
                seen,
            } => self.resolve(&item_id, &field, &value, &seen),
            Command::NameDevice { name, if_unnamed } => {
                Ok(vec![Step::Device(DeviceCommand::Name { name, if_unnamed })])
            }
            // Answered before steps are made (Service::undo_or_redo).
            Command::Undo | Command::Redo => Ok(vec![]),
        }
    }

    /// The step that ends a field's conflict with `value` (JSON), after checking that the
    /// user saw every value now competing (the current one and each conflict).
    fn resolve(
        &self,
        item_id: &str,
        field: &str,
        value: &str,
        seen: &[String],
    ) -> Result<Vec<Step>, Refusal> {
        let id = parse_id("item id", item_id)?;
        // Checked on the state commands decide on (the log and the outbox as they are now),
        // not on the views, which may lag them while a long pull is stored.
        let state = self.replica.borrow().state(id)?;
        let competing = match field {
            "name" => state.list.name.competing(),
            "title" => state.todo.title.competing(),
            "notes" => state.todo.notes.competing(),
            "due_date" => state.todo.due_date.competing(),
            "completed" => state.todo.completed.competing(),
            "list" => state.todo.list.competing(),
            other => {
                return Err(Refusal::Failed(ServiceError::Malformed {
                    what: "field",
                    text: other.chars().take(40).collect(),
                }))
            }
        };
        if competing.is_empty() {
            return Err(Refusal::Stale(format!(
                "the {} is no longer in conflict (resolved meanwhile)",
                field.replace('_', " ")
            )));
        }
        if let Some((_, device)) = competing
            .iter()
            .find(|(stamp, _)| !seen.contains(&stamp.encode()))
        {
            let names = {
                let replica = self.replica.borrow();
                changes::devices(replica.views().connection(), &self.workspace.to_string())
                    .map_err(ServiceError::from)?
            };
            let device = device.to_string();
            let who = names
                .iter()
                .find(|n| n.device_id == device)
                .map_or("another device", |n| n.name.as_str());
            return Err(Refusal::Stale(format!(
                "a new value from {who} arrived while you chose: look again"
            )));
        }
        let shown = competing.first().map(|(stamp, _)| *stamp);
        let malformed = || {
            Refusal::Failed(ServiceError::Malformed {
                what: "value",
                text: value.chars().take(80).collect(),
            })
        };
        let json: serde_json::Value = serde_json::from_str(value).map_err(|_| malformed())?;
        let text = || json.as_str().map(str::to_string).ok_or_else(malformed);
        let todo_edit = |edit: TodoEdit| {
            Ok(vec![Step::Todo(
                id,
                TodoCommand::Edit {
                    edit,
                    resolving: true,
                    shown,
                },
            )])
        };
        match field {
            "name" => Ok(vec![Step::List(
                id,
                ListCommand::Rename {
                    name: text()?,
                    resolving: true,
                    shown,
                },
            )]),
            "title" => todo_edit(TodoEdit::Title(text()?)),
            "notes" => todo_edit(TodoEdit::Notes(text()?)),
            "due_date" => todo_edit(TodoEdit::DueDate(match &json {
                serde_json::Value::Null => None,
                _ => parse_due(Some(text()?))?,
            })),
            "completed" => todo_edit(TodoEdit::Completed(json.as_bool().ok_or_else(malformed)?)),
            "list" => {
                let list = parse_id("list id", &text()?)?;
                // Staying in the list keeps the place; another list takes it at the end.
                let position = match self.position_of(id)? {
                    Some(at) if self.list_of(id)? == list => at,
                    _ => position::between(self.last_position(list)?.as_deref(), None)
                        .map_err(|e| Refusal::Domain(e.into()))?,
                };
                Ok(vec![Step::Todo(
                    id,
                    TodoCommand::MoveToList {
                        list_id: list,
                        position,
                        shown_list: shown,
                        shown_position: None,
                        resolving: true,
                    },
                )])
            }
            other => Err(Refusal::Failed(ServiceError::Malformed {
                what: "field",
                text: other.chars().take(40).collect(),
            })),
        }
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Option<String>, Refusal> {
        let replica = self.replica.borrow();
        let value = replica
            .views()
            .connection()
            .prepare_cached(sql)?
            .query_row(params, |r| r.get::<_, Option<String>>(0))
            .optional()?;
        Ok(value.flatten())
    }

    fn position_of(&self, todo: AggregateId) -> Result<Option<String>, Refusal> {
        self.query_opt(
            "SELECT position FROM todos WHERE todo_id = ?1 AND NOT deleted",
            &[&todo.to_string()],
        )
    }

    fn list_of(&self, todo: AggregateId) -> Result<AggregateId, Refusal> {
        let list = self.query_opt(
            "SELECT list_id FROM todos WHERE todo_id = ?1",
            &[&todo.to_string()],
        )?;
        match list {
            Some(list) => Ok(parse_id("list id", &list)?),
            None => Err(Refusal::Domain(DomainError::NotFound {
                kind: "todo",
                id: todo,
            })),
        }
    }

    fn last_position(&self, list: AggregateId) -> Result<Option<String>, Refusal> {
        self.query_opt(
            "SELECT max(position) FROM todos WHERE list_id = ?1",
            &[&list.to_string()],
        )
    }

    fn last_position_but(
        &self,
        list: AggregateId,
        but: AggregateId,
    ) -> Result<Option<String>, Refusal> {
        self.query_opt(
            "SELECT max(position) FROM todos WHERE list_id = ?1 AND todo_id <> ?2 AND NOT deleted",
            &[&list.to_string(), &but.to_string()],
        )
    }

    /// The smallest position after `at` in the list (ties with `at` skipped).
    fn next_position(
        &self,
        list: AggregateId,
        at: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        self.query_opt(
            "SELECT min(position) FROM todos WHERE list_id = ?1 AND position > ?2",
            &[&list.to_string(), &at.unwrap_or("")],
        )
    }

    /// The greatest position before `at` in the list, not counting the todo being moved.
    fn previous_position(
        &self,
        list: AggregateId,
        moved: AggregateId,
        at: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        self.query_opt(
            "SELECT max(position) FROM todos WHERE list_id = ?1 AND todo_id <> ?2 \
             AND NOT deleted AND position < ?3",
            &[&list.to_string(), &moved.to_string(), &at.unwrap_or("")],
        )
    }

    /// The live todos of a list with this completion.
    fn todo_ids(
        &self,
        list: AggregateId,
        completed: Option<bool>,
    ) -> Result<Vec<AggregateId>, Refusal> {
        // Only the ids: a toggle-all of 10,000 items needs no titles or conflict counts.
        let replica = self.replica.borrow();
        let mut stmt = replica.views().connection().prepare_cached(
            "SELECT todo_id FROM todos WHERE list_id = ?1 AND NOT deleted \
             AND (?2 IS NULL OR completed = ?2)",
        )?;
        let ids = stmt
            .query_map(rusqlite::params![list.to_string(), completed], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|id| parse_id("todo id", id).map_err(Refusal::from))
            .collect()
    }
}

/// What "Undo" names a command by (`None`: not undoable: a device's name, undo and redo).
fn undo_label(command: &Command) -> Option<String> {
    Some(match command {
        Command::CreateList { name, .. } => format!("create the list “{}”", name.trim()),
        Command::RenameList { .. } => "rename the list".into(),
        Command::DeleteList { .. } => "delete the list".into(),
        Command::AddTodo { title, .. } => format!("add “{}”", title.trim()),
        Command::EditTitle { .. } => "edit the title".into(),
        Command::EditNotes { .. } => "edit the notes".into(),
        Command::SetDueDate { .. } => "set the due date".into(),
        Command::SetCompleted {
            completed: true, ..
        } => "mark as done".into(),
        Command::SetCompleted { .. } => "mark as not done".into(),
        Command::ToggleAll { .. } => "mark all".into(),
        Command::DeleteTodo { .. } => "delete the to-do".into(),
        Command::ClearCompleted { .. } => "clear completed".into(),
        Command::MoveTodo { .. } => "reorder".into(),
        Command::MoveToList { .. } => "move to another list".into(),
        Command::RestoreList { .. } | Command::RestoreTodo { .. } => "restore".into(),
        Command::ResolveConflict { .. } => "resolve the conflict".into(),
        Command::NameDevice { .. } | Command::Undo | Command::Redo => return None,
    })
}

fn reply_json(reply: &Reply) -> String {
    serde_json::to_string(reply).unwrap_or_default()
}

fn parse_id(what: &'static str, text: &str) -> Result<AggregateId, ServiceError> {
    text.parse().map_err(|_| ServiceError::Malformed {
        what,
        text: text.chars().take(80).collect(),
    })
}

fn parse_stamp(text: Option<String>) -> Result<Option<Stamp>, ServiceError> {
    text.map(|t| {
        t.parse().map_err(|_| ServiceError::Malformed {
            what: "stamp",
            text: t.chars().take(80).collect(),
        })
    })
    .transpose()
}

fn parse_due(text: Option<String>) -> Result<Option<DueDate>, Refusal> {
    text.map(|t| {
        t.parse::<DueDate>()
            .map_err(|e| Refusal::Domain(DomainError::from(e)))
    })
    .transpose()
}
