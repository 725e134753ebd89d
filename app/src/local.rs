//! The page's handle on the device's local store: the Dedicated Web Worker (crate `worker`)
//! that owns the OPFS databases. Requests go out as `tandem_protocol::data` messages with ids;
//! replies come back to their callbacks; change sets and sync status land in the [`Model`].
//! During SSR there is no worker: every call is a no-op there.

use leptos::prelude::*;
use tandem_protocol::data::{
    Command, Database, DeviceName, EventTable, FieldConflict, HistoryEntry, InspectedEvent,
    ListRow, PageMessage, QueryPage, Reply, Request, StoreState, TodoRow, TrashRow, UndoLabels,
};

use crate::model::Model;
use crate::snapshot::Snapshot;

/// Why the local store did not give what the page asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The domain said no (nothing was recorded); the reason is for the user.
    #[error("{0}")]
    Refused(String),
    /// The store could not do it (not running, a disk error, a broken record).
    #[error("{0}")]
    Failed(String),
    /// A reply of another kind than the request's (a worker of another build).
    #[error("the local store gave an unexpected answer to {0}")]
    Unexpected(&'static str),
}

impl AskError {
    /// The error a reply other than the expected one stands for.
    fn of(asked: &'static str, reply: Reply) -> Self {
        match reply {
            Reply::Refused { reason } => Self::Refused(reason),
            Reply::Failed { reason } => Self::Failed(reason),
            _ => Self::Unexpected(asked),
        }
    }
}

/// A list as it was at a moment ([`Local::as_of`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AsOf {
    pub list: Option<ListRow>,
    pub deleted: bool,
    pub todos: Vec<TodoRow>,
}

/// What [`Local::inspect_events`] asks for: a page of the log or outbox, filtered.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectEvents {
    pub table: EventTable,
    pub event_type: Option<String>,
    pub item: Option<String>,
    pub device: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// A copyable handle, provided as context by [`provide_local`].
#[derive(Clone, Copy)]
pub struct Local {
    #[cfg(feature = "hydrate")]
    client: StoredValue<Option<std::rc::Rc<browser::Client>>, LocalStorage>,
    /// Set once the worker's views have reached what the server rendered: from then on the
    /// page reads the local store.
    pub ready: RwSignal<bool>,
    /// Whether the local store could not catch up with the server yet (offline, another log).
    pub behind: RwSignal<bool>,
    /// Bumped when the page must read its list again (the switch to the local store, a reset).
    pub generation: RwSignal<u64>,
    /// This device's id, once the worker said it.
    pub device_id: RwSignal<Option<String>>,
    /// The store is in memory only (no file storage in this window): edits last only until
    /// they are sent.
    pub memory: RwSignal<bool>,
    /// The workspace this page opened (change sets and status of others are not its own).
    pub workspace: RwSignal<Option<String>>,
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    /// The handshake sent before the worker started (it starts once the session is known):
    /// sent as it starts.
    early_open: StoredValue<Option<PageMessage>>,
}

/// Creates the handle; the worker starts once the page knows who is signed in
/// ([`Local::start`]).
pub fn provide_local(model: Model) -> Local {
    let local = Local {
        #[cfg(feature = "hydrate")]
        client: StoredValue::new_local(None),
        ready: RwSignal::new(false),
        behind: RwSignal::new(false),
        generation: RwSignal::new(0),
        device_id: RwSignal::new(None),
        memory: RwSignal::new(false),
        workspace: RwSignal::new(None),
        early_open: StoredValue::new(None),
    };
    provide_context(local);
    // A store in memory loses what is unsent when the tab closes: the browser asks first.
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::beforeunload, move |ev| {
            if local.memory.get_untracked() && model.sync.with_untracked(|s| s.pending > 0) {
                ev.prevent_default();
                ev.set_return_value("Changes not yet sent will be lost.");
            }
        });
        // For the page's life.
        std::mem::forget(handle);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = model;
    local
}

/// Starts the worker for the signed-in account (once; its databases are that account's,
/// DESIGN.md rule 24), and signs this tab out when another tab signs the account out.
pub fn start_for(local: Local, model: Model, account: &str) {
    #[cfg(feature = "hydrate")]
    {
        if local.client.with_value(|c| c.is_some()) {
            return;
        }
        match browser::Client::start(model, local, account) {
            Ok(client) => {
                if let Some(open) = local.early_open.get_value() {
                    client.send(open);
                }
                local.client.set_value(Some(client));
            }
            Err(reason) => model.source.set(crate::model::Source::Unavailable(reason)),
        }
        browser::follow_sign_out(local, account);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (local, model, account);
}

/// Pushes what it can before signing out: asks for a sync, then waits (at most 5 s) until
/// nothing of the account is unsent; returns how many events still are (`None`: the store
/// could not say).
pub async fn push_before_leaving(local: Local, model: Model) -> Option<u64> {
    #[cfg(feature = "hydrate")]
    {
        let _ = model;
        local.send(PageMessage::SyncNow);
        let deadline = js_sys::Date::now() + 5_000.0;
        loop {
            let left = local.unsent().await.ok()?;
            if left == 0 || js_sys::Date::now() > deadline {
                return Some(left);
            }
            browser::sleep_ms(200).await;
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (local, model);
        Some(0)
    }
}

/// While a tab signs `account` out, its other tabs take no input (the page is `inert`, with a
/// note saying why), so nothing is written after the last count of unsent changes. The tab
/// signing out repeats this every few seconds until it is done (`signing` false thaws them);
/// a tab that hears nothing for 15 s thaws by itself (the signing tab was closed).
pub async fn freeze_other_tabs(account: &str, signing: impl Fn() -> bool) {
    #[cfg(feature = "hydrate")]
    {
        browser::FREEZING_OTHERS.set(true);
        while signing() {
            browser::tell_tabs(&format!("freeze:{account}"));
            browser::sleep_ms(5_000).await;
        }
        browser::FREEZING_OTHERS.set(false);
        browser::tell_tabs(&format!("thaw:{account}"));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (account, signing);
}

/// Deletes the account's local data (its OPFS folder, DESIGN.md rule 24) once every tab's
/// worker has let go of it, after telling the other tabs to sign out.
pub async fn forget_account(account: &str) {
    forget_session(account);
    #[cfg(feature = "hydrate")]
    browser::forget_account(account).await;
    #[cfg(not(feature = "hydrate"))]
    let _ = account;
}

/// Deletes this device's copy of the account's data (a damaged one), keeping the session: the
/// next load downloads the server's copy afresh.
pub async fn delete_local_copy(account: &str) {
    #[cfg(feature = "hydrate")]
    browser::delete_local_copy(account).await;
    #[cfg(not(feature = "hydrate"))]
    let _ = account;
}

/// Downloads the files of this device's copy of the account's log (events.db and its -wal, as
/// SQLite files: a damaged or newer one the store cannot open), so what it held can be looked
/// at or handed to an administrator before starting afresh. Returns the downloads' names.
pub async fn export_local_copy(account: &str) -> Result<Vec<String>, String> {
    #[cfg(feature = "hydrate")]
    {
        browser::export_local_copy(account).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = account;
        Ok(vec![])
    }
}

pub fn use_local() -> Local {
    expect_context::<Local>()
}

impl Local {
    /// Sends a message (queued until the worker listens).
    pub fn send(&self, message: PageMessage) {
        #[cfg(feature = "hydrate")]
        {
            let started = self.client.with_value(|c| c.is_some());
            if !started {
                if matches!(message, PageMessage::Open { .. }) {
                    self.early_open.set_value(Some(message));
                }
                return;
            }
            self.client.with_value(|c| {
                if let Some(c) = c {
                    c.send(message);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = message;
    }

    /// Sends a request; `on_reply` gets its reply. (Pages use the typed, awaited methods
    /// below; this is what they are made of.)
    #[cfg(feature = "hydrate")]
    fn request(&self, request: Request, on_reply: impl FnOnce(Reply) + 'static) {
        self.client.with_value(|c| match c {
            Some(c) => c.request(request, Box::new(on_reply)),
            None => on_reply(Reply::Failed {
                reason: "the local store is not running".into(),
            }),
        });
    }

    /// For a page the server rendered no views for (the Trash, the inspector): when it is the
    /// first page of the session, the worker is told so and switches to the local store at once
    /// (for the workspace last shown on this browser, else the account's first).
    pub fn open_without_server_view(&self) {
        let local = *self;
        let account = crate::account::use_account();
        Effect::new(move |_| {
            let Some(session) = account.session.get().flatten() else {
                return;
            };
            if local.ready.get_untracked() {
                return;
            }
            local.open_last_workspace(account, &session, None);
        });
    }

    /// Opens the local store with no server view, for `wanted` (a `/w/:ws` URL's) when the
    /// account is in it, else the workspace last shown on this browser, else the account's
    /// first; the workspace it opened, if the account has one.
    pub fn open_last_workspace(
        &self,
        account: crate::account::Account,
        session: &crate::account::Session,
        wanted: Option<&str>,
    ) -> Option<String> {
        let last = last_workspace(&session.user_id);
        let find = |id: Option<&str>| {
            session
                .workspaces
                .iter()
                .find(|w| Some(w.workspace_id.as_str()) == id)
        };
        let space = find(wanted)
            .or_else(|| find(last.as_deref()))
            .or(session.workspaces.first())
            .cloned()?;
        account.workspace.set(Some(space.workspace_id.clone()));
        account.role.set(Some(space.role.clone()));
        self.open(0, None, space.workspace_id.clone(), Some(space.role));
        Some(space.workspace_id)
    }

    /// Resolves once the local store has caught up (at once when it has).
    pub async fn until_ready(&self) {
        #[cfg(feature = "hydrate")]
        {
            if self.ready.get_untracked() {
                return;
            }
            let (tx, rx) = futures_channel::oneshot::channel::<()>();
            let tx = std::cell::Cell::new(Some(tx));
            let ready = self.ready;
            let effect = Effect::new(move |_| {
                if ready.get() {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            });
            let _ = rx.await;
            effect.dispose();
        }
    }

    /// Tells the worker what the page shows: the server's views of `workspace` at `head`.
    pub fn open(&self, head: u64, log_id: Option<String>, workspace: String, role: Option<String>) {
        self.workspace.set(Some(workspace.clone()));
        self.send(PageMessage::Open {
            head,
            log_id,
            workspace_id: workspace,
            role,
        });
    }

    /// Ends this tab's worker for good (signing out).
    pub fn stop(&self) {
        #[cfg(feature = "hydrate")]
        self.client.with_value(|c| {
            if let Some(c) = c {
                c.stop_for_good();
            }
        });
    }

    /// The reply to `request`, awaited (a store that is not running, or goes away, answers
    /// `failed`).
    async fn ask(&self, request: Request) -> Reply {
        #[cfg(feature = "hydrate")]
        {
            let (tx, rx) = futures_channel::oneshot::channel();
            self.request(request, move |reply| {
                let _ = tx.send(reply);
            });
            rx.await.unwrap_or(Reply::Failed {
                reason: "the local store went away".into(),
            })
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = request;
            Reply::Failed {
                reason: "the page is not running yet".into(),
            }
        }
    }

    /// Runs a command with a fresh id (DESIGN.md rule 18); `Ok` with how many events it
    /// recorded.
    pub async fn run(&self, command: Command) -> Result<u64, AskError> {
        self.run_as(new_id(), command).await
    }

    /// [`Self::run`] with the page's own command id (a new item named after its command).
    pub async fn run_as(&self, command_id: String, command: Command) -> Result<u64, AskError> {
        match self
            .ask(Request::Command {
                command_id,
                command,
            })
            .await
        {
            Reply::Done { events } => Ok(events),
            other => Err(AskError::of("a command", other)),
        }
    }

    /// The workspace's lists.
    pub async fn lists(&self) -> Result<Vec<ListRow>, AskError> {
        match self.ask(Request::Lists).await {
            Reply::Lists { lists } => Ok(lists),
            other => Err(AskError::of("lists", other)),
        }
    }

    /// The Trash, newest first, and whether there is more than it holds.
    pub async fn trash(&self) -> Result<(Vec<TrashRow>, bool), AskError> {
        match self.ask(Request::Trash).await {
            Reply::Trash { items, more } => Ok((items, more)),
            other => Err(AskError::of("the Trash", other)),
        }
    }

    /// An item's (list's or to-do's) history.
    pub async fn history(&self, id: String) -> Result<Vec<HistoryEntry>, AskError> {
        match self.ask(Request::History { id }).await {
            Reply::History { entries } => Ok(entries),
            other => Err(AskError::of("history", other)),
        }
    }

    /// A list as it was at `at_ms`: its row, whether it was deleted, its to-dos.
    pub async fn as_of(&self, list_id: String, at_ms: u64) -> Result<AsOf, AskError> {
        match self.ask(Request::AsOf { list_id, at_ms }).await {
            Reply::AsOf {
                list,
                deleted,
                todos,
            } => Ok(AsOf {
                list,
                deleted,
                todos,
            }),
            other => Err(AskError::of("a list as it was", other)),
        }
    }

    /// The labels of what Undo and Redo would take back now.
    pub async fn undo_state(&self) -> Result<UndoLabels, AskError> {
        match self.ask(Request::UndoState).await {
            Reply::UndoState { undo, redo } => Ok(UndoLabels { undo, redo }),
            other => Err(AskError::of("the undo state", other)),
        }
    }

    /// The device's log and outbox as JSON lines of the wire form, and how many events.
    pub async fn export(&self) -> Result<(String, u64), AskError> {
        match self.ask(Request::Export).await {
            Reply::Export { lines, events } => Ok((lines, events)),
            other => Err(AskError::of("an export", other)),
        }
    }

    /// How many of the account's events are not sent yet.
    pub async fn unsent(&self) -> Result<u64, AskError> {
        match self.ask(Request::Unsent).await {
            Reply::Unsent { events } => Ok(events),
            other => Err(AskError::of("the unsent count", other)),
        }
    }

    /// The store's state for the inspector.
    pub async fn inspect_state(&self) -> Result<StoreState, AskError> {
        match self.ask(Request::InspectState).await {
            Reply::InspectState(state) => Ok(state),
            other => Err(AskError::of("the store's state", other)),
        }
    }

    /// A page of the log or outbox for the inspector (`request` is `InspectEvents`), and
    /// whether more follow.
    pub async fn inspect_events(
        &self,
        request: InspectEvents,
    ) -> Result<(Vec<InspectedEvent>, bool), AskError> {
        let InspectEvents {
            table,
            event_type,
            item,
            device,
            offset,
            limit,
        } = request;
        let request = Request::InspectEvents {
            table,
            event_type,
            item,
            device,
            offset,
            limit,
        };
        match self.ask(request).await {
            Reply::InspectEvents { events, more } => Ok((events, more)),
            other => Err(AskError::of("events", other)),
        }
    }

    /// A page of one read-only SQL statement's rows (the inspector's console).
    pub async fn query(
        &self,
        database: Database,
        sql: String,
        offset: u64,
    ) -> Result<QueryPage, AskError> {
        match self
            .ask(Request::Query {
                database,
                sql,
                offset,
            })
            .await
        {
            Reply::Query(page) => Ok(page),
            other => Err(AskError::of("a query", other)),
        }
    }

    /// Rebuilds the views from the log; how many events were replayed.
    pub async fn rebuild_views(&self) -> Result<u64, AskError> {
        match self.ask(Request::RebuildViews).await {
            Reply::Rebuilt { events } => Ok(events),
            other => Err(AskError::of("a rebuild", other)),
        }
    }

    /// A to-do's or list's fields in conflict.
    pub async fn conflicts(&self, id: String) -> Result<Vec<FieldConflict>, AskError> {
        match self.ask(Request::Conflicts { id }).await {
            Reply::Conflicts { fields } => Ok(fields),
            other => Err(AskError::of("conflicts", other)),
        }
    }

    /// The workspace's device names, and this device's id.
    pub async fn devices(&self) -> Result<(Vec<DeviceName>, String), AskError> {
        match self.ask(Request::Devices).await {
            Reply::Devices {
                devices,
                this_device,
            } => Ok((devices, this_device)),
            other => Err(AskError::of("device names", other)),
        }
    }

    /// The page's view of one list read from the local store.
    pub async fn snapshot(&self, list_id: Option<String>) -> Result<Snapshot, String> {
        #[cfg(feature = "hydrate")]
        {
            let client = self
                .client
                .with_value(|c| c.clone())
                .ok_or("the local store is not running")?;
            client.snapshot(list_id).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = list_id;
            Err("no local store on the server".into())
        }
    }
}

/// The workspace this browser showed last for `account` (the Trash and the inspector open it).
pub fn last_workspace(account: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.local_storage().ok().flatten())
            .and_then(|s| {
                s.get_item(&format!("tandem-workspace:{account}"))
                    .ok()
                    .flatten()
            })
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = account;
        None
    }
}

/// Remembers the workspace shown last.
pub fn remember_workspace(account: &str, workspace: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(&format!("tandem-workspace:{account}"), workspace);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (account, workspace);
}

/// Whether this page was mounted from the offline shell (`/shell.html`, served by the service
/// worker when the server could not be reached) instead of hydrated from a page the server
/// rendered: it then starts from what this browser keeps.
pub fn mounted_from_shell() -> bool {
    #[cfg(feature = "hydrate")]
    {
        browser::FROM_SHELL.get()
    }
    #[cfg(not(feature = "hydrate"))]
    false
}

/// Called by the wasm's `mount` entry point before it mounts the app.
pub fn mark_mounted_from_shell() {
    #[cfg(feature = "hydrate")]
    browser::FROM_SHELL.set(true);
}

const SESSION_KEY: &str = "tandem-session";

/// Remembers who is signed in on this browser, for a start without the server (DESIGN.md rule
/// 24: offline, the page opens the account last signed in and not signed out). Who and their
/// workspaces' names and roles: nothing that signs anyone in.
pub fn remember_session(session: &crate::account::Session) {
    #[cfg(feature = "hydrate")]
    if let (Some(storage), Ok(text)) = (
        web_sys::window().and_then(|w| w.local_storage().ok().flatten()),
        serde_json::to_string(session),
    ) {
        let _ = storage.set_item(SESSION_KEY, &text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (session, SESSION_KEY);
}

/// The session remembered on this browser, if any (and readable).
pub fn remembered_session() -> Option<crate::account::Session> {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.local_storage().ok().flatten())
            .and_then(|s| s.get_item(SESSION_KEY).ok().flatten())
            .and_then(|text| serde_json::from_str(&text).ok())
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

/// Forgets the remembered session, whoever's it is: the server said nobody is signed in here
/// (signed out everywhere, ended from another device, expired, disabled). The local data stays
/// (DESIGN.md rule 24: its outbox is sent after the next sign-in); an offline start then shows
/// the sign-in form instead of the lists.
pub fn forget_remembered_session() {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.remove_item(SESSION_KEY);
    }
}

/// Forgets the remembered session when it is `account`'s (it signed out).
fn forget_session(account: &str) {
    if remembered_session().is_some_and(|s| s.user_id == account) {
        forget_remembered_session();
    }
}

/// Marks the page ready (`body[data-ready]`, CONTRACT.md): it shows the local store.
pub fn mark_ready() {
    #[cfg(feature = "hydrate")]
    browser::mark_body_ready();
}

/// A UUID v7 (time-ordered, DESIGN.md rule 2) minted on the page: command ids and the ids of
/// new items (so a command sent again makes the same item).
pub fn new_id() -> String {
    #[cfg(feature = "hydrate")]
    {
        let mut random = [0u8; 10];
        let filled = web_sys::window()
            .and_then(|w| w.crypto().ok())
            .and_then(|c| c.get_random_values_with_u8_array(&mut random).ok());
        if filled.is_none() {
            for b in &mut random {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        uuid::Builder::from_unix_timestamp_millis(js_sys::Date::now() as u64, &random)
            .into_uuid()
            .to_string()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        uuid::Uuid::nil().to_string()
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    //! The `Worker` object and its message plumbing. The worker serves the store itself (it
    //! owns it) or relays to another tab's worker that does; either way the page only talks to
    //! its own worker. Requests stay here until answered, and are sent again whenever the
    //! worker says the store is served anew (a handoff between tabs, a restarted worker), with
    //! their original ids: commands take effect once (DESIGN.md rule 18).

    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, HashMap};
    use std::rc::Rc;

    use leptos::prelude::*;
    use tandem_protocol::data::{PageMessage, Reply, Request, WorkerMessage};
    use wasm_bindgen::prelude::*;
    use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

    use super::Local;
    use crate::model::{Model, Source};
    use crate::snapshot::Snapshot;

    /// The worker's bootstrap script (server/assets/worker.js, its files' URLs filled in by the
    /// server); the account and the page's build follow as `?account=…&build=…`.
    const WORKER_URL: &str = "/worker.js";
    /// Where a tab tells the others that an account signed out (they sign out too).
    const ACCOUNT_CHANNEL: &str = "tandem-account";
    /// A worker that failed is started again at most this many times in [`RESTART_WINDOW_MS`].
    const MAX_RESTARTS: usize = 3;
    const RESTART_WINDOW_MS: f64 = 60_000.0;
    /// Held up by an older build, the worker is started again this often.
    const OTHER_BUILD_RETRY_MS: u64 = 30_000;

    type OnReply = Box<dyn FnOnce(Reply)>;

    pub struct Client {
        /// The running worker (`None` between `pagehide` and `pageshow`).
        worker: RefCell<Option<Worker>>,
        /// Whether the store is served (the worker said `serving`): until then messages wait.
        serving: Cell<bool>,
        /// The handshake, kept to be sent again on every `serving`.
        open: RefCell<Option<PageMessage>>,
        online: Cell<bool>,
        next_id: Cell<u64>,
        /// Requests without a reply yet, in the order sent, and what to do with the reply.
        unanswered: RefCell<BTreeMap<u64, Request>>,
        waiting: RefCell<HashMap<u64, OnReply>>,
        model: Model,
        local: Local,
        /// The signed-in account the worker serves.
        account: String,
        /// Signing out: the worker is not started again.
        ended: Cell<bool>,
        /// Which worker this is (counted from 1): events of a worker ended since are ignored.
        generation: Cell<u64>,
        /// The current worker has said something (it started).
        heard: Cell<bool>,
        /// When a worker that had started was started again after failing (ms, the last few).
        restarts: RefCell<Vec<f64>>,
        /// How many worker failures each unanswered request has been in flight for.
        failures: RefCell<HashMap<u64, u32>>,
        /// Whether this tab's worker owns the store (its last `serving`).
        owner: Cell<bool>,
    }

    impl Client {
        pub fn start(model: Model, local: Local, account: &str) -> Result<Rc<Self>, String> {
            let online = web_sys::window().is_none_or(|w| w.navigator().on_line());
            let client = Rc::new(Self {
                worker: RefCell::new(None),
                serving: Cell::new(false),
                open: RefCell::new(None),
                online: Cell::new(online),
                next_id: Cell::new(1),
                unanswered: RefCell::default(),
                waiting: RefCell::default(),
                model,
                local,
                account: account.to_string(),
                ended: Cell::new(false),
                generation: Cell::new(0),
                heard: Cell::new(false),
                restarts: RefCell::default(),
                failures: RefCell::default(),
                owner: Cell::new(false),
            });
            client.start_worker()?;
            forward_network(Rc::clone(&client));
            release_on_pagehide(Rc::clone(&client));
            Ok(client)
        }

        /// Starts this tab's worker (which becomes the owner or a relay).
        fn start_worker(self: &Rc<Self>) -> Result<(), String> {
            let (model, local) = (self.model, self.local);
            let options = WorkerOptions::new();
            options.set_type(WorkerType::Module);
            if self.ended.get() {
                return Ok(());
            }
            let url = format!(
                "{WORKER_URL}?account={}&build={}",
                self.account,
                js_sys::encode_uri_component(tandem_protocol::BUILD)
            );
            let worker = Worker::new_with_options(&url, &options)
                .map_err(|e| format!("cannot start the local store: {e:?}"))?;
            let generation = self.generation.get() + 1;
            self.generation.set(generation);
            self.heard.set(false);
            let weak = Rc::downgrade(self);
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Some(client) = weak.upgrade() else { return };
                if client.generation.get() != generation {
                    return;
                }
                client.heard.set(true);
                let Some(text) = event.data().as_string() else {
                    return;
                };
                match WorkerMessage::from_json(&text) {
                    Ok(message) => client.receive(message, model, local),
                    Err(e) => leptos::logging::warn!("tandem: {e}"),
                }
            });
            // A worker that cannot load fires a plain `error` Event; a failing one (an
            // exception, or a trap of its wasm: a panic aborts) an ErrorEvent.
            let weak = Rc::downgrade(self);
            let on_error =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                    let why = event
                        .dyn_ref::<ErrorEvent>()
                        .map(|e| e.message())
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| "its script could not be loaded".into());
                    if let Some(client) = weak.upgrade() {
                        if client.generation.get() == generation {
                            client.failed(why);
                        }
                    }
                });
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            // The handlers live as long as the page (a few more if the worker restarts).
            on_message.forget();
            on_error.forget();
            self.serving.set(false);
            *self.worker.borrow_mut() = Some(worker);
            Ok(())
        }

        /// The worker failed. One that never started is reported as such; one that ran is in
        /// an unknown state after an uncaught error (a trapped wasm keeps no promise), so it is
        /// ended — releasing the store's lock and files, if it owned them, to the next tab in
        /// line — and started again; its unanswered requests go to whoever serves next (each
        /// command once: DESIGN.md rule 18). Failing again and again, it stops and says so.
        fn failed(self: &Rc<Self>, why: String) {
            if !self.heard.get() {
                self.stop_worker();
                self.model.source.set(Source::Unavailable(format!(
                    "The local store did not start: {why}."
                )));
                return;
            }
            leptos::logging::error!("tandem: the local store failed ({why}); starting it again");
            let now = js_sys::Date::now();
            let again = {
                let mut restarts = self.restarts.borrow_mut();
                restarts.retain(|at| now - at < RESTART_WINDOW_MS);
                restarts.push(now);
                restarts.len() <= MAX_RESTARTS
            };
            self.stop_worker();
            // A request that was in flight at two failures may be what fails the store: it is
            // answered as failed instead of being sent to the next store (and the next tab's).
            let poisonous: Vec<u64> = {
                let unanswered = self.unanswered.borrow();
                let mut failures = self.failures.borrow_mut();
                failures.retain(|id, _| unanswered.contains_key(id));
                unanswered
                    .keys()
                    .filter(|id| {
                        let n = failures.entry(**id).or_insert(0);
                        *n += 1;
                        *n >= 2
                    })
                    .copied()
                    .collect()
            };
            for id in poisonous {
                self.answer_locally(
                    id,
                    "the local store failed while doing this, twice; it was not tried again",
                );
            }
            if !again {
                self.model.source.set(Source::Unavailable(format!(
                    "The local store failed {MAX_RESTARTS} times in a minute ({why}); reload the page to try again."
                )));
                // Nothing will answer them now: every waiting request fails (nothing waits
                // forever, signing out included).
                let ids: Vec<u64> = self.unanswered.borrow().keys().copied().collect();
                for id in ids {
                    self.answer_locally(id, "the local store stopped");
                }
                return;
            }
            if let Err(reason) = self.start_worker() {
                self.model.source.set(Source::Unavailable(reason));
            }
        }

        /// Answers request `id` here with a failure (no store will).
        fn answer_locally(&self, id: u64, reason: &str) {
            self.unanswered.borrow_mut().remove(&id);
            self.failures.borrow_mut().remove(&id);
            let waiting = self.waiting.borrow_mut().remove(&id);
            if let Some(on_reply) = waiting {
                on_reply(Reply::Failed {
                    reason: reason.into(),
                });
            }
        }

        /// Ends the worker for good (signing out): it is not started again.
        pub fn stop_for_good(&self) {
            self.ended.set(true);
            self.stop_worker();
        }

        /// Ends this tab's worker at once (releasing the store's lock and files to the next
        /// tab, if it owned them). Unanswered requests stay, to be sent again.
        fn stop_worker(&self) {
            self.serving.set(false);
            // Events still queued from the worker ended here are not its successor's.
            self.generation.set(self.generation.get() + 1);
            if let Some(worker) = self.worker.borrow_mut().take() {
                worker.terminate();
            }
        }

        fn post(&self, message: &PageMessage) {
            if !self.serving.get() {
                return;
            }
            if let Some(worker) = &*self.worker.borrow() {
                if let Err(e) = worker.post_message(&JsValue::from_str(&message.to_json())) {
                    leptos::logging::error!("tandem: cannot reach the local store: {e:?}");
                }
            }
        }

        pub fn send(&self, message: PageMessage) {
            match &message {
                PageMessage::Open { .. } => *self.open.borrow_mut() = Some(message.clone()),
                PageMessage::Network { online } => self.online.set(*online),
                _ => {}
            }
            self.post(&message);
        }

        pub fn request(&self, request: Request, on_reply: OnReply) {
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            self.waiting.borrow_mut().insert(id, on_reply);
            self.unanswered.borrow_mut().insert(id, request.clone());
            self.post(&PageMessage::Request { id, request });
        }

        /// The store is served anew (by this tab's worker or through it): the handshake, the
        /// network state and every request without a reply go (again), in order. After a
        /// handoff the page first reads what it shows again: a change set may have been lost
        /// with the previous owner, and a command it committed is answered from its record,
        /// without rows.
        fn serving(self: &Rc<Self>, owner: bool) {
            let handoff = self.open.borrow().is_some() && self.local.ready.get_untracked();
            self.serving.set(true);
            self.owner.set(owner);
            set_body_attribute("data-store", if owner { "owner" } else { "relay" });
            if matches!(
                self.model.source.get_untracked(),
                Source::Unavailable(_) | Source::Damaged(_) | Source::OtherBuild { .. }
            ) {
                self.model.source.set(if self.local.ready.get_untracked() {
                    Source::Local {
                        behind: self.local.behind.get_untracked(),
                    }
                } else {
                    Source::Server
                });
            }
            if let Some(open) = self.open.borrow().clone() {
                self.post(&open);
            }
            if !self.online.get() {
                self.post(&PageMessage::Network { online: false });
            }
            let unanswered: Vec<_> = self
                .unanswered
                .borrow()
                .iter()
                .map(|(id, request)| (*id, request.clone()))
                .collect();
            if handoff {
                let model = self.model;
                let list_id = model.list_id.get_untracked();
                self.request(
                    Request::Snapshot {
                        list_id: list_id.clone(),
                    },
                    Box::new(move |reply| match reply {
                        // Unless the page went to another list meanwhile (its own load wins).
                        Reply::Snapshot(view) if model.list_id.get_untracked() == list_id => {
                            model.load(&view)
                        }
                        _ => {}
                    }),
                );
            }
            if handoff && !unanswered.is_empty() {
                leptos::logging::log!(
                    "tandem: the store changed hands; {} request(s) sent again",
                    unanswered.len()
                );
            }
            for (id, request) in unanswered {
                self.post(&PageMessage::Request { id, request });
            }
        }

        /// Lists and one list's todos from the local store, read at once.
        pub async fn snapshot(&self, list_id: Option<String>) -> Result<Snapshot, String> {
            match self.ask(Request::Snapshot { list_id }).await {
                Reply::Snapshot(view) => Ok(Snapshot {
                    view,
                    head: 0,
                    log_id: None,
                    local: true,
                    workspace_id: self.local.workspace.get_untracked(),
                    role: None,
                }),
                other => Err(failure(other)),
            }
        }

        async fn ask(&self, request: Request) -> Reply {
            let (tx, rx) = futures_channel::oneshot::channel();
            self.request(
                request,
                Box::new(move |reply| {
                    let _ = tx.send(reply);
                }),
            );
            rx.await.unwrap_or(Reply::Failed {
                reason: "the local store went away".into(),
            })
        }

        fn receive(self: &Rc<Self>, message: WorkerMessage, model: Model, local: Local) {
            match message {
                WorkerMessage::Serving { owner, memory } => {
                    local.memory.set(memory);
                    self.serving(owner);
                }
                WorkerMessage::Unavailable {
                    reason, damaged, ..
                } => model.source.set(if damaged {
                    Source::Damaged(reason)
                } else {
                    Source::Unavailable(reason)
                }),
                WorkerMessage::Ready { device_id, .. } => {
                    local.device_id.set(Some(device_id));
                    if model.source.get_untracked() == Source::Server {
                        model.source.set(Source::Opening);
                    }
                }
                WorkerMessage::CaughtUp { behind } => {
                    local.behind.set(behind);
                    if local.ready.get_untracked() {
                        model.source.set(Source::Local { behind });
                    } else {
                        // The list route reads the local store from now on, and reads it now.
                        local.ready.set(true);
                        local.generation.update(|g| *g += 1);
                    }
                }
                WorkerMessage::Progress {
                    stored,
                    head,
                    workspace_id,
                } => {
                    if self.mine(&workspace_id) {
                        model
                            .progress
                            .set((stored < head).then_some((stored, head)))
                    }
                }
                WorkerMessage::Restart => {
                    self.stop_worker();
                    if let Err(reason) = self.start_worker() {
                        model.source.set(Source::Unavailable(reason));
                    }
                }
                WorkerMessage::OtherBuild { build } => {
                    let newer = tandem_protocol::build_older(tandem_protocol::BUILD, &build);
                    if newer && reload_once_for(&build) {
                        return;
                    }
                    model.source.set(Source::OtherBuild { newer });
                    // An older build holds things up (another tab's, or this tab's worker files
                    // served during a deploy): try again in a while.
                    if !newer {
                        let weak = Rc::downgrade(self);
                        set_timeout(
                            move || {
                                let Some(client) = weak.upgrade() else { return };
                                let stuck = matches!(
                                    client.model.source.get_untracked(),
                                    Source::OtherBuild { .. }
                                );
                                if stuck && !client.serving.get() {
                                    client.stop_worker();
                                    if let Err(reason) = client.start_worker() {
                                        client.model.source.set(Source::Unavailable(reason));
                                    }
                                }
                            },
                            std::time::Duration::from_millis(OTHER_BUILD_RETRY_MS),
                        );
                    }
                }
                WorkerMessage::Rebuilding { done, total } => model
                    .rebuilding
                    .set((done < total).then_some((done, total))),
                WorkerMessage::Reply { id, reply } => {
                    self.unanswered.borrow_mut().remove(&id);
                    let waiting = self.waiting.borrow_mut().remove(&id);
                    if let Some(on_reply) = waiting {
                        on_reply(reply);
                    }
                }
                WorkerMessage::Changed {
                    changes,
                    workspace_id,
                } => {
                    if self.mine(&workspace_id)
                        && model.apply(changes)
                        && local.ready.get_untracked()
                    {
                        local.generation.update(|g| *g += 1);
                    }
                }
                WorkerMessage::Sync {
                    status,
                    workspace_id,
                } => {
                    if self.mine(&workspace_id) {
                        // An acknowledgement moves events from the outbox to the log without
                        // changing a row (no change set): what shows pending or synced (History,
                        // the inspector) reads again when the count of unsent events falls. (A
                        // rise comes with the command's own change set, which already did.)
                        let acked = status.pending < model.sync.with_untracked(|s| s.pending);
                        model.sync.set(status);
                        if acked {
                            model.revision.update(|r| *r += 1);
                        }
                    }
                }
            }
        }
    }

    impl Client {
        /// Whether a message about `workspace` is this page's (untagged ones are everyone's).
        fn mine(&self, workspace: &Option<String>) -> bool {
            workspace.is_none() || *workspace == self.local.workspace.get_untracked()
        }
    }

    thread_local! {
        /// This page was mounted from the offline shell ([`super::mounted_from_shell`]).
        pub static FROM_SHELL: Cell<bool> = const { Cell::new(false) };
        /// This tab is signing out (it ignores its own "signed out" message).
        static SIGNING_OUT: Cell<bool> = const { Cell::new(false) };
        /// This tab freezes the others (it ignores its own "freeze").
        pub static FREEZING_OTHERS: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether the focus is in a text field with something typed in it.
    fn typing_in(window: &web_sys::Window) -> bool {
        let Some(active) = window.document().and_then(|d| d.active_element()) else {
            return false;
        };
        if let Some(input) = active.dyn_ref::<web_sys::HtmlInputElement>() {
            return !input.value().is_empty();
        }
        if let Some(area) = active.dyn_ref::<web_sys::HtmlTextAreaElement>() {
            return !area.value().is_empty();
        }
        false
    }

    /// Reloads the page to get build `build` (a newer one is served): once per build and tab,
    /// so two builds that keep meeting cannot reload each other forever. Whether it reloads.
    fn reload_once_for(build: &str) -> bool {
        const KEY: &str = "tandem-reloaded-for";
        let Some(window) = web_sys::window() else {
            return false;
        };
        let Ok(Some(storage)) = window.session_storage() else {
            return false;
        };
        if storage.get_item(KEY).ok().flatten().as_deref() == Some(build) {
            return false;
        }
        // Never under someone typing: the banner offers the reload instead.
        if typing_in(&window) {
            return false;
        }
        if storage.set_item(KEY, build).is_err() {
            return false;
        }
        leptos::logging::log!("tandem: build {build} is served; reloading");
        window.location().reload().is_ok()
    }

    /// Waits `ms` (a timer of the window).
    pub async fn sleep_ms(ms: i32) {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }

    /// Posts `message` to the other tabs of this browser (the account channel).
    pub fn tell_tabs(message: &str) {
        if let Ok(channel) = web_sys::BroadcastChannel::new(ACCOUNT_CHANNEL) {
            let _ = channel.post_message(&JsValue::from_str(message));
            channel.close();
        }
    }

    /// Makes the page take no input while another tab signs the account out (`true`), or
    /// gives it back; CSS shows why (`body[data-frozen]`).
    fn set_frozen(frozen: bool) {
        let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        else {
            return;
        };
        if frozen {
            let _ = body.set_attribute("inert", "");
            let _ = body.set_attribute("data-frozen", "signing-out");
        } else {
            let _ = body.remove_attribute("inert");
            let _ = body.remove_attribute("data-frozen");
        }
    }

    /// Another tab of this browser signs `account` out: this tab freezes while it counts
    /// (thawing 15 s after the last word from it), then lets go of the store and shows the
    /// sign-in page.
    pub fn follow_sign_out(local: Local, account: &str) {
        let Ok(channel) = web_sys::BroadcastChannel::new(ACCOUNT_CHANNEL) else {
            return;
        };
        let account = account.to_string();
        // Bumped by every freeze and thaw: a thaw timer acts only if nothing came since.
        let generation = Rc::new(Cell::new(0u64));
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            // This tab's own message reaches this channel object too: the tab signing out
            // goes on deleting the data, then leaves by itself.
            if SIGNING_OUT.get() {
                return;
            }
            let Some(message) = event.data().as_string() else {
                return;
            };
            match message.split_once(':') {
                Some(("signed-out", who)) if who == account => {
                    local.stop();
                    crate::api::go("/");
                }
                Some(("freeze", who)) if who == account && !FREEZING_OTHERS.get() => {
                    generation.set(generation.get() + 1);
                    set_frozen(true);
                    let mine = generation.get();
                    let generation = Rc::clone(&generation);
                    wasm_bindgen_futures::spawn_local(async move {
                        sleep_ms(15_000).await;
                        if generation.get() == mine {
                            set_frozen(false);
                        }
                    });
                }
                Some(("thaw", who)) if who == account => {
                    generation.set(generation.get() + 1);
                    set_frozen(false);
                }
                _ => {}
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // For the page's life.
        on_message.forget();
        std::mem::forget(channel);
    }

    /// Tells the other tabs, then removes the account's OPFS folder (and the adopted folder
    /// from before accounts, when it is this account's), retrying while another tab's worker
    /// still lets go of its files.
    pub async fn forget_account(account: &str) {
        SIGNING_OUT.set(true);
        tell_tabs(&format!("signed-out:{account}"));
        delete_local_copy(account).await;
    }

    /// Removes the account's OPFS folder, retrying while a worker still lets go of its files.
    pub async fn delete_local_copy(account: &str) {
        let deadline = js_sys::Date::now() + 10_000.0;
        loop {
            match remove_folders(account).await {
                Ok(()) => return,
                Err(e) if js_sys::Date::now() > deadline => {
                    leptos::logging::error!("tandem: cannot delete the local data: {e}");
                    return;
                }
                Err(e) => {
                    leptos::logging::log!(
                        "tandem: the local data is still held ({e}); trying again"
                    );
                    sleep_ms(200).await
                }
            }
        }
    }

    /// OPFS from the page, through the methods' names (web-sys would need a feature per
    /// handle type for the few calls made here).
    mod opfs {
        use wasm_bindgen::prelude::*;
        use wasm_bindgen_futures::JsFuture;

        pub fn err(e: JsValue) -> String {
            format!("{e:?}")
        }

        /// Calls `target.method(...args)`.
        pub fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
            let f: js_sys::Function = js_sys::Reflect::get(target, &method.into())
                .map_err(err)?
                .dyn_into()
                .map_err(err)?;
            let array = js_sys::Array::new();
            for a in args {
                array.push(a);
            }
            f.apply(target, &array).map_err(err)
        }

        /// Awaits `target.method(...args)`, a promise.
        pub async fn ask(
            target: &JsValue,
            method: &str,
            args: &[JsValue],
        ) -> Result<JsValue, JsValue> {
            let promise = call(target, method, args).map_err(|e| JsValue::from_str(&e))?;
            JsFuture::from(promise.unchecked_into::<js_sys::Promise>()).await
        }

        /// The folder `tandem` at the root of this origin's OPFS, if it exists (and OPFS does).
        pub async fn tandem_folder() -> Result<Option<JsValue>, String> {
            let window = web_sys::window().ok_or("no window")?;
            let storage: JsValue = window.navigator().storage().into();
            let get = js_sys::Reflect::get(&storage, &"getDirectory".into()).map_err(err)?;
            if !get.is_function() {
                return Ok(None);
            }
            let root = ask(&storage, "getDirectory", &[]).await.map_err(err)?;
            Ok(ask(&root, "getDirectoryHandle", &["tandem".into()])
                .await
                .ok())
        }

        /// The text of the file `name` in `folder`, if it exists.
        pub async fn text_of(folder: &JsValue, name: &str) -> Option<String> {
            let handle = ask(folder, "getFileHandle", &[name.into()]).await.ok()?;
            let file = ask(&handle, "getFile", &[]).await.ok()?;
            ask(&file, "text", &[]).await.ok()?.as_string()
        }

        /// The account's folders in `tandem`: its own and, when it adopted it (only then), the
        /// one from before accounts.
        pub async fn account_folders(tandem: &JsValue, account: &str) -> Vec<String> {
            let mut folders = vec![account.to_string()];
            if text_of(tandem, "anonymous.owner")
                .await
                .as_deref()
                .map(str::trim)
                == Some(account)
            {
                folders.push("anonymous".into());
            }
            folders
        }
    }

    async fn remove_folders(account: &str) -> Result<(), String> {
        let Some(tandem) = opfs::tandem_folder().await? else {
            return Ok(());
        };
        let recursive = js_sys::Object::new();
        js_sys::Reflect::set(&recursive, &"recursive".into(), &true.into()).map_err(opfs::err)?;
        for folder in opfs::account_folders(&tandem, account).await {
            match opfs::ask(
                &tandem,
                "removeEntry",
                &[folder.into(), recursive.clone().into()],
            )
            .await
            {
                Ok(_) => {}
                // Gone already.
                Err(e) if format!("{e:?}").contains("NotFoundError") => {}
                Err(e) => return Err(opfs::err(e)),
            }
        }
        // The adopted folder is gone with its owner; no account opens it again.
        if opfs::text_of(&tandem, "last-account")
            .await
            .as_deref()
            .map(str::trim)
            == Some(account)
        {
            let _ = opfs::ask(&tandem, "removeEntry", &["last-account".into()]).await;
        }
        Ok(())
    }

    /// The log files of the account's OPFS folders (see [`super::export_local_copy`]): in the
    /// pool VFS each file is a slot whose first 4 KiB hold its name; the database follows.
    pub async fn export_local_copy(account: &str) -> Result<Vec<String>, String> {
        let err = opfs::err;
        let window = web_sys::window().ok_or("no window")?;
        let tandem = opfs::tandem_folder()
            .await?
            .ok_or("this device holds no copy")?;
        let mut folders = vec![];
        for name in opfs::account_folders(&tandem, account).await {
            if let Ok(folder) = opfs::ask(&tandem, "getDirectoryHandle", &[name.into()]).await {
                folders.push(folder);
            }
        }
        let mut exported = vec![];
        while let Some(dir) = folders.pop() {
            let entries = opfs::call(&dir, "values", &[])?;
            loop {
                let next = opfs::ask(&entries, "next", &[]).await.map_err(err)?;
                if js_sys::Reflect::get(&next, &"done".into())
                    .map_err(err)?
                    .is_truthy()
                {
                    break;
                }
                let entry = js_sys::Reflect::get(&next, &"value".into()).map_err(err)?;
                let kind = js_sys::Reflect::get(&entry, &"kind".into())
                    .map_err(err)?
                    .as_string();
                if kind.as_deref() == Some("directory") {
                    folders.push(entry);
                    continue;
                }
                let file: web_sys::Blob = opfs::ask(&entry, "getFile", &[])
                    .await
                    .map_err(err)?
                    .unchecked_into();
                if file.size() <= 4096.0 {
                    continue;
                }
                let head: JsValue = file.slice_with_i32_and_i32(0, 512).map_err(err)?.into();
                let header = opfs::ask(&head, "arrayBuffer", &[]).await.map_err(err)?;
                let bytes = js_sys::Uint8Array::new(&header).to_vec();
                let end = bytes.iter().position(|b| *b == 0).unwrap_or(0);
                let name = String::from_utf8_lossy(&bytes[..end]).to_string();
                if name != "events.db" && name != "events.db-wal" {
                    continue;
                }
                let data = file.slice_with_i32(4096).map_err(err)?;
                let url = web_sys::Url::create_object_url_with_blob(&data).map_err(err)?;
                let link: web_sys::HtmlElement = window
                    .document()
                    .ok_or("no document")?
                    .create_element("a")
                    .map_err(err)?
                    .unchecked_into();
                link.set_attribute("href", &url).map_err(err)?;
                let download = format!("tandem-{name}");
                link.set_attribute("download", &download).map_err(err)?;
                link.click();
                // The download has its own copy once started; the URL is freed after a while.
                let revoke = Closure::once_into_js(move || {
                    let _ = web_sys::Url::revoke_object_url(&url);
                });
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                    revoke.unchecked_ref(),
                    60_000,
                );
                exported.push(download);
            }
        }
        Ok(exported)
    }

    fn failure(reply: Reply) -> String {
        match reply {
            Reply::Failed { reason } | Reply::Refused { reason } => reason,
            other => format!("unexpected answer from the local store: {other:?}"),
        }
    }

    /// The page's network and focus go to the worker (a dedicated worker's own network is not
    /// cut by the browser's offline switch, and it cannot see focus).
    fn forward_network(client: Rc<Client>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let online = {
            let client = Rc::clone(&client);
            Closure::<dyn FnMut()>::new(move || client.send(PageMessage::Network { online: true }))
        };
        let offline = {
            let client = Rc::clone(&client);
            Closure::<dyn FnMut()>::new(move || client.send(PageMessage::Network { online: false }))
        };
        let focus = {
            let client = Rc::clone(&client);
            Closure::<dyn FnMut()>::new(move || client.send(PageMessage::Focus))
        };
        let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
        let _ =
            window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
        let _ = window.add_event_listener_with_callback("focus", focus.as_ref().unchecked_ref());
        // They live as long as the page.
        online.forget();
        offline.forget();
        focus.forget();
        if !window.navigator().on_line() {
            client.send(PageMessage::Network { online: false });
        }
    }

    /// The page hands the store over when it goes away or is frozen (`pagehide`, `freeze`:
    /// its worker ends, releasing the lock and the files to the next tab at once), and takes
    /// part again when it comes back (`pageshow` from the back/forward cache, `resume`) —
    /// except a store in memory with unsent edits, which would be lost with its worker.
    fn release_on_pagehide(client: Rc<Client>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let stop = {
            let client = Rc::clone(&client);
            Closure::<dyn FnMut()>::new(move || {
                // A store in memory holds the unsent edits of every tab's workspace and nowhere
                // else: its owner's worker stays (the page asks before it really closes),
                // whatever the other tabs wait for. A relay's holds nothing.
                if client.local.memory.get_untracked() && client.owner.get() {
                    return;
                }
                client.stop_worker()
            })
        };
        let again = {
            let client = Rc::clone(&client);
            Closure::<dyn FnMut()>::new(move || {
                if client.worker.borrow().is_some() {
                    return;
                }
                if let Err(reason) = client.start_worker() {
                    client.model.source.set(Source::Unavailable(reason));
                }
            })
        };
        let _ = window.add_event_listener_with_callback("pagehide", stop.as_ref().unchecked_ref());
        let _ = window.add_event_listener_with_callback("pageshow", again.as_ref().unchecked_ref());
        if let Some(document) = window.document() {
            let _ =
                document.add_event_listener_with_callback("freeze", stop.as_ref().unchecked_ref());
            let _ =
                document.add_event_listener_with_callback("resume", again.as_ref().unchecked_ref());
        }
        // They live as long as the page.
        stop.forget();
        again.forget();
    }

    fn set_body_attribute(name: &str, value: &str) {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute(name, value);
        }
    }

    /// `<body data-ready="true">`: hydrated and showing the local store (CONTRACT.md).
    pub fn mark_body_ready() {
        set_body_attribute("data-ready", "true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_another_kind_is_an_error_that_keeps_the_stores_reason() {
        let refused = AskError::of(
            "a command",
            Reply::Refused {
                reason: "That list was deleted.".into(),
            },
        );
        assert_eq!(refused, AskError::Refused("That list was deleted.".into()));
        assert_eq!(refused.to_string(), "That list was deleted.");
        let failed = AskError::of(
            "the Trash",
            Reply::Failed {
                reason: "disk I/O error".into(),
            },
        );
        assert_eq!(failed, AskError::Failed("disk I/O error".into()));
        let other = AskError::of("the Trash", Reply::Done { events: 1 });
        assert_eq!(other, AskError::Unexpected("the Trash"));
        assert_eq!(
            other.to_string(),
            "the local store gave an unexpected answer to the Trash"
        );
    }
}
