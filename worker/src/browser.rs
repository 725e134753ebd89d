//! The worker's event loop. Every tab has one of these workers, for the signed-in account
//! (DESIGN.md rule 24: its databases in its own OPFS folder); the one holding the account's Web
//! Lock `tandem-store:<account>` is the **owner**: it opens the device's databases and serves
//! the data service and sync, for its own page and for the other tabs of that account, whose
//! workers **relay** their pages' messages to it over the BroadcastChannel
//! `tandem-tabs:<account>` (docs/protocol.md "Several tabs"). Each page shows one workspace; the
//! owner serves each workspace a page opened (its service, sync loop and live socket) and tags
//! change sets and sync status with their workspace. The owner serves on one thread, nothing
//! waiting on anything else: the replica is borrowed only between awaits (store/src/driver.rs).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use tandem_events::engine::{Action, Input, Settings};
use tandem_events::ids::{DeviceId, WorkspaceId};
use tandem_protocol::data::{
    Changes, Denied, PageMessage, Reply, SyncState, SyncStatus, TabMessage, Unavailable,
    UndoLabels, WorkerMessage,
};
use tandem_protocol::sync::{
    ErrorCode, LiveMessage, PullRequest, PullResponse, PushRequest, PushResponse,
};
use tandem_protocol::BUILD;
use tandem_store::driver::{
    Notice, Notifier, SharedReplica, SyncClient, Transport, TransportError,
};
use tandem_store::Replica;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{BroadcastChannel, DedicatedWorkerGlobalScope, MessageEvent};

use crate::service::Service;

/// The Web Lock held by the worker that owns an account's databases (the account id follows).
const LOCK_PREFIX: &str = "tandem-store:";
/// The channel between the tabs' workers of one account (the account id follows).
const CHANNEL_PREFIX: &str = "tandem-tabs:";
/// How long to keep retrying the OPFS pool while a previous owner (a tab closing or being
/// reloaded) still holds its access handles.
const OPFS_RETRY_DEADLINE_MS: f64 = 10_000.0;
/// After that, the lock goes to the next tab for this long before this one asks again.
const OPFS_RETRY_PAUSE_MS: i32 = 2_000;
/// A local change is pushed after this pause, so a burst of commands is one push.
const PUSH_DEBOUNCE_MS: i32 = 5;
/// Change sets for other tabs are merged and sent at most this often.
const TAB_BATCH_MS: i32 = 10;
/// A pull every so often heals anything the live channel missed.
const HEAL_EVERY_MS: i32 = 30_000;
/// A request without an answer after this long counts as unreachable.
const FETCH_TIMEOUT_MS: i32 = 30_000;
/// A recovery from a restored server that failed (unreachable, signed out) is tried again
/// after this long.
const RECOVERY_RETRY_MS: i32 = 30_000;
/// The files a recovery builds beside the device's own (docs/protocol.md "A restored server").
const RECOVERY_EVENTS: &str = "recovery-events.db";
const RECOVERY_VIEWS: &str = "recovery-views.db";
const RECOVERY_FILES: [&str; 6] = [
    "recovery-events.db",
    "recovery-events.db-wal",
    "recovery-events.db-journal",
    "recovery-views.db",
    "recovery-views.db-wal",
    "recovery-views.db-journal",
];
/// Live socket reconnects: full jitter, doubling from the first up to the last.
const LIVE_BACKOFF_MS: (u64, u64) = (250, 30_000);

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// To this tab's page.
fn post(message: &WorkerMessage) {
    if let Err(e) = scope().post_message(&JsValue::from_str(&message.to_json())) {
        web_sys::console::error_2(&"tandem worker: postMessage failed".into(), &e);
    }
}

/// This tab's worker as everything in it sees it: the account it serves, the channel to the
/// other tabs' workers, and what it holds once it owns the store. One per worker, shared.
struct Context {
    /// The signed-in account (a UUID) and its OPFS folder.
    account: String,
    folder: String,
    /// The channel to the other tabs' workers.
    channel: BroadcastChannel,
    /// The epoch of this worker's ownership (0 until it owns the store).
    epoch: Cell<u64>,
    /// Whether this owner's store is in memory only.
    memory: Cell<bool>,
    /// The OPFS pool, once installed.
    pool: RefCell<Option<tandem_store::opfs::OpfsPool>>,
}

impl Context {
    /// To the other tabs' workers.
    fn to_tabs(&self, message: &TabMessage) {
        if let Err(e) = self
            .channel
            .post_message(&JsValue::from_str(&message.to_json()))
        {
            web_sys::console::error_2(&"tandem worker: cannot reach the other tabs".into(), &e);
        }
    }

    /// To every page: this tab's and, through their workers, the other tabs'.
    fn to_every_page(&self, message: WorkerMessage) {
        post(&message);
        self.to_tabs(&TabMessage::ToAll {
            epoch: self.epoch.get(),
            message,
        });
    }

    /// Deletes closed database files of the pool (missing ones are fine).
    fn remove_files(&self, names: &[&str]) {
        if let Some(pool) = &*self.pool.borrow() {
            for name in names {
                if let Err(e) = pool.remove(name) {
                    web_sys::console::warn_1(&format!("tandem worker: {e}").into());
                }
            }
        }
    }
}

/// The build of the page that started this worker: `build` in the worker's URL (empty for a
/// page from before builds were named).
fn page_build() -> String {
    let search = scope().location().search();
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()
        .and_then(|params| params.get("build"))
        .unwrap_or_default()
}

/// Where this tab's worker stands.
enum Role {
    /// Another tab's worker owns the store (the one named, with its epoch, once known): this
    /// one relays its page's messages there.
    Relay { owner: Option<(String, u64)> },
    /// This worker owns the store and serves every tab.
    Owner(Rc<App>),
}

/// This tab's worker: its id on the channel and its role.
struct Tab {
    ctx: Rc<Context>,
    id: String,
    role: RefCell<Role>,
}

impl Tab {
    /// A message from this tab's page.
    fn on_page(&self, message: PageMessage) {
        let app = match &*self.role.borrow() {
            Role::Owner(app) => Rc::clone(app),
            Role::Relay {
                owner: Some((owner, _)),
            } => {
                self.ctx.to_tabs(&TabMessage::ToOwner {
                    from: self.id.clone(),
                    owner: owner.clone(),
                    message,
                });
                return;
            }
            // Sent again by the page on `serving`.
            Role::Relay { owner: None } => return,
        };
        app.on_message(&Client::Page, message);
    }

    /// A message from another tab's worker. A relay follows the owner with the greatest epoch
    /// and passes on only that owner's messages (a late one from an earlier owner is dropped).
    fn on_tab(&self, message: TabMessage) {
        // A tab of a newer build: this tab's page reloads (it hears it from its worker).
        if let TabMessage::Hello { build, .. } | TabMessage::Owner { build, .. } = &message {
            if tandem_protocol::build_older(BUILD, build) {
                post(&WorkerMessage::OtherBuild {
                    build: build.clone(),
                });
            }
        }
        let mut role = self.role.borrow_mut();
        match (&mut *role, message) {
            (Role::Owner(_), TabMessage::Hello { .. }) => self.ctx.to_tabs(&TabMessage::Owner {
                tab: self.id.clone(),
                epoch: self.ctx.epoch.get(),
                memory: self.ctx.memory.get(),
                build: BUILD.to_string(),
            }),
            // An owner of another build speaks another protocol: never followed. A newer one
            // reloads this page (above); this tab waits for an older one's tab to reload.
            (Role::Relay { .. }, TabMessage::Owner { build, .. })
                if build != BUILD && !tandem_protocol::build_older(BUILD, &build) =>
            {
                post(&WorkerMessage::OtherBuild { build })
            }
            (Role::Relay { .. }, TabMessage::Owner { build, .. }) if build != BUILD => {}
            (
                Role::Owner(app),
                TabMessage::ToOwner {
                    from,
                    owner,
                    message,
                },
            ) if owner == self.id => {
                let app = Rc::clone(app);
                drop(role);
                app.on_message(&Client::Tab(from), message);
            }
            (
                Role::Relay { owner },
                TabMessage::Owner {
                    tab, epoch, memory, ..
                },
            ) if owner.as_ref().is_none_or(|(_, known)| epoch > *known) => {
                *owner = Some((tab, epoch));
                drop(role);
                post(&WorkerMessage::Serving {
                    owner: false,
                    memory,
                });
            }
            (
                Role::Relay { owner },
                TabMessage::ToTab {
                    tab,
                    epoch,
                    message,
                },
            ) if tab == self.id && owner.as_ref().is_some_and(|(_, e)| *e == epoch) => {
                post(&message)
            }
            (Role::Relay { owner }, TabMessage::ToAll { epoch, message })
                if owner.as_ref().map_or(0, |(_, e)| *e) == epoch =>
            {
                post(&message)
            }
            _ => {}
        }
    }
}

/// Entry point, called by `worker.js` once the module is initialised, with the signed-in
/// account (a UUID) and its OPFS folder.
#[wasm_bindgen]
pub async fn worker_main(account: String, folder: String) -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    // A page of another build (an old tab meeting a new deploy): this worker serves it nothing.
    if page_build() != BUILD {
        post(&WorkerMessage::OtherBuild {
            build: BUILD.to_string(),
        });
        return Ok(());
    }
    if uuid::Uuid::parse_str(&account).is_err() || !folder.starts_with("tandem/") {
        post(&WorkerMessage::Unavailable {
            damaged: false,
            kind: Unavailable::NoStorage,
            reason: "no account: sign in to open the local store".into(),
        });
        return Ok(());
    }
    let ctx = Rc::new(Context {
        channel: BroadcastChannel::new(&format!("{CHANNEL_PREFIX}{account}"))?,
        account,
        folder,
        epoch: Cell::new(0),
        memory: Cell::new(false),
        pool: RefCell::new(None),
    });
    let tab = Rc::new(Tab {
        ctx: Rc::clone(&ctx),
        id: new_uuid_v7().to_string(),
        role: RefCell::new(Role::Relay { owner: None }),
    });
    {
        let from_page = Rc::clone(&tab);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(message) = decode(&event, PageMessage::from_json) {
                from_page.on_page(message);
            }
        });
        scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // The handlers live as long as the worker.
        on_message.forget();
        let from_tab = Rc::clone(&tab);
        let on_tab = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(message) = decode(&event, TabMessage::from_json) {
                from_tab.on_tab(message);
            }
        });
        ctx.channel
            .set_onmessage(Some(on_tab.as_ref().unchecked_ref()));
        on_tab.forget();
    }
    // Whoever owns the store answers (or announces itself once it serves).
    ctx.to_tabs(&TabMessage::Hello {
        tab: tab.id.clone(),
        build: BUILD.to_string(),
    });
    // Held by the owner for the worker's life (ending the worker releases it).
    let lock = loop {
        let lock = match take_lock(&ctx.account).await {
            Ok(lock) => lock,
            Err(reason) => {
                // No Web Locks: no owner can be elected; this tab says so and owns nothing.
                post(&WorkerMessage::Unavailable {
                    damaged: false,
                    kind: Unavailable::NoStorage,
                    reason,
                });
                return Ok(());
            }
        };
        match own(&tab).await {
            Ok(()) => break lock,
            Err(failure) => {
                // The pages without an owner are told why, and the lock goes to the next tab
                // in line (which may fare better, and otherwise says so too).
                let why = WorkerMessage::Unavailable {
                    kind: failure.kind,
                    reason: failure.reason,
                    damaged: failure.damaged,
                };
                post(&why);
                ctx.to_tabs(&TabMessage::ToAll {
                    epoch: 0,
                    message: why,
                });
                // Every database is closed by now (`own` dropped them): the files go too.
                if let Some(pool) = ctx.pool.take() {
                    if let Err(e) = pool.release() {
                        web_sys::console::error_1(&format!("tandem worker: {e}").into());
                    }
                }
                lock.release();
                if !failure.transient {
                    return Ok(());
                }
                // Files still held by a tab that is going away: wait, and try again.
                sleep_ms(OPFS_RETRY_PAUSE_MS).await;
            }
        }
    };
    std::mem::forget(lock);
    Ok(())
}

/// Why this worker could not own the store.
struct OwnFailure {
    kind: Unavailable,
    /// The log's file is damaged: said once, with the offer to start afresh.
    damaged: bool,
    reason: String,
    /// Worth trying again later (files held by another tab, not a browser without OPFS).
    transient: bool,
}

/// Holding the lock: opens the store, takes the next ownership epoch and serves, telling
/// this tab's page and the other tabs.
async fn own(tab: &Tab) -> Result<(), OwnFailure> {
    let ctx = &tab.ctx;
    let (replica, memory) = open_replica(ctx).await?;
    ctx.memory.set(memory);
    let replica = Rc::new(RefCell::new(replica));
    // A store in memory starts afresh in every owner, so its count would start at 1 again:
    // its epoch is the time instead, greater than any earlier owner's.
    let epoch = if memory {
        Ok(js_sys::Date::now() as u64)
    } else {
        replica.borrow().log().take_ownership()
    }
    .map_err(|e| OwnFailure {
        damaged: false,
        kind: Unavailable::Storage,
        reason: format!("cannot write to the local store: {e}"),
        transient: true,
    })?;
    ctx.epoch.set(epoch);
    ask_for_persistence();
    let app = App::start(replica, Rc::clone(ctx)).map_err(|reason| OwnFailure {
        damaged: false,
        kind: Unavailable::Storage,
        reason,
        transient: true,
    })?;
    *tab.role.borrow_mut() = Role::Owner(app);
    post(&WorkerMessage::Serving {
        owner: true,
        memory,
    });
    ctx.to_tabs(&TabMessage::Owner {
        tab: tab.id.clone(),
        epoch,
        memory,
        build: BUILD.to_string(),
    });
    Ok(())
}

fn decode<T>(
    event: &MessageEvent,
    from_json: fn(&str) -> Result<T, tandem_protocol::data::DecodeError>,
) -> Option<T> {
    let text = event.data().as_string()?;
    match from_json(&text) {
        Ok(message) => Some(message),
        Err(e) => {
            web_sys::console::warn_1(&format!("tandem worker: {e}").into());
            None
        }
    }
}

/// The Web Lock `tandem-store`, held until released (or the worker ends).
struct Lock {
    release: js_sys::Function,
}

impl Lock {
    fn release(&self) {
        let _ = self.release.call0(&JsValue::NULL);
    }
}

/// Waits for the account's Web Lock `tandem-store:<account>` (queued behind the tab that holds it, and any tab
/// waiting before this one).
async fn take_lock(account: &str) -> Result<Lock, String> {
    let navigator = scope().navigator();
    let locks = js_sys::Reflect::get(&navigator, &"locks".into())
        .ok()
        .filter(|l| !l.is_undefined())
        .ok_or("this browser has no Web Locks (needed to own the local store)")?;
    let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into())
        .map_err(|_| "navigator.locks.request is missing")?
        .unchecked_into();
    let (granted_tx, granted) = promise_pair();
    let release: Rc<RefCell<Option<js_sys::Function>>> = Rc::default();
    // The lock callback says the lock is granted and returns a promise that settles only when
    // the lock is released: the lock is held until then.
    let held = {
        let release = Rc::clone(&release);
        Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_lock: JsValue| {
            let _ = granted_tx.call0(&JsValue::NULL);
            let (resolve, until_released) = promise_pair();
            *release.borrow_mut() = Some(resolve);
            until_released.into()
        })
    };
    let name = format!("{LOCK_PREFIX}{account}");
    request
        .call2(&locks, &name.into(), held.as_ref().unchecked_ref())
        .map_err(|e| format!("cannot request the store lock: {e:?}"))?;
    held.forget();
    JsFuture::from(granted)
        .await
        .map_err(|e| format!("the store lock failed: {e:?}"))?;
    let release = release
        .borrow_mut()
        .take()
        .ok_or("the store lock was granted without a way to release it")?;
    Ok(Lock { release })
}

/// Before the store opens: a recovery from a restored server that finished but whose copy over
/// events.db did not happen (its tab went first, or the copy failed) is finished now; the
/// files of one that did not finish are deleted (the old files hold everything). Returns the
/// files to open: the device's own, or — when the copy fails again — the recovered ones.
fn finish_recovery(ctx: &Context, device: DeviceId) -> (&'static str, &'static str) {
    let own = ("events.db", "views.db");
    let exists = ctx
        .pool
        .borrow()
        .as_ref()
        .is_some_and(|p| p.contains(RECOVERY_EVENTS).unwrap_or(false));
    if !exists {
        return own;
    }
    let finished = tandem_store::log::EventLog::open(RECOVERY_EVENTS, device, Arc::new(now_ms))
        .and_then(|log| log.is_recovered().map(|done| (log, done)));
    match finished {
        Ok((log, true)) => match log.copy_over("events.db") {
            Ok(()) => {
                drop(log);
                ctx.remove_files(&RECOVERY_FILES);
                ctx.remove_files(&["views.db", "views.db-wal", "views.db-journal"]);
                own
            }
            Err(e) => {
                web_sys::console::warn_1(
                    &format!("tandem worker: the recovered log stays where it is for now: {e}")
                        .into(),
                );
                (RECOVERY_EVENTS, RECOVERY_VIEWS)
            }
        },
        Ok((log, false)) => {
            drop(log);
            ctx.remove_files(&RECOVERY_FILES);
            own
        }
        Err(e) => {
            web_sys::console::warn_1(
                &format!("tandem worker: an unfinished recovery's files are dropped: {e}").into(),
            );
            ctx.remove_files(&RECOVERY_FILES);
            own
        }
    }
}

/// Opens a replica on the pool's files `events` and `views`, with the worker's clock and ids
/// (`device` is used only when `events` is new).
fn open_files(
    events: &str,
    views: &str,
    device: DeviceId,
) -> Result<Replica, tandem_store::ReplicaError> {
    Replica::open(
        events,
        views,
        device,
        Arc::new(now_ms),
        Box::new(new_uuid_v7),
        |_| {},
    )
}

/// A promise and the function that resolves it.
fn promise_pair() -> (js_sys::Function, js_sys::Promise) {
    let slot: Rc<RefCell<Option<js_sys::Function>>> = Rc::default();
    let inner = Rc::clone(&slot);
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        *inner.borrow_mut() = Some(resolve);
    });
    let resolve = slot
        .borrow_mut()
        .take()
        .unwrap_or_else(|| js_sys::Function::new_no_args(""));
    (resolve, promise)
}

/// Opens the store: in OPFS, or — where the window gives no file storage at all (some private
/// windows) — in memory (`true`), which the page announces. Files merely held by a dying tab
/// are waited for, never a reason to fall back.
async fn open_replica(ctx: &Context) -> Result<(Replica, bool), OwnFailure> {
    // Used only when events.db is new: the device id is minted once and kept (DESIGN.md rule 1).
    let device = DeviceId::from_uuid(new_uuid_v7());
    if !opfs_reachable().await {
        let replica = Replica::open_in_memory(device, Arc::new(now_ms), Box::new(new_uuid_v7))
            .map_err(|e| OwnFailure {
                damaged: false,
                kind: Unavailable::Storage,
                reason: format!("cannot open a store in memory: {e}"),
                transient: false,
            })?;
        return Ok((replica, true));
    }
    let start = js_sys::Date::now();
    let mut delay_ms = 50;
    loop {
        match tandem_store::opfs::install_opfs_vfs(&ctx.folder).await {
            Ok(pool) => {
                *ctx.pool.borrow_mut() = Some(pool);
                break;
            }
            Err(e) if js_sys::Date::now() - start < OPFS_RETRY_DEADLINE_MS => {
                web_sys::console::warn_1(&format!("tandem worker: {e}; retrying").into());
                sleep_ms(delay_ms).await;
                delay_ms = (delay_ms * 2).min(1_000);
            }
            Err(e) => {
                return Err(OwnFailure {
                    damaged: false,
                    kind: Unavailable::NoStorage,
                    reason: format!(
                        "the local store's files are still held elsewhere ({e}); trying again"
                    ),
                    transient: true,
                })
            }
        }
    }
    let (events, views) = finish_recovery(ctx, device);
    let open = || open_files(events, views, device);
    let opened = match open() {
        // The views are a projection of the log: damaged ones are deleted and built again
        // from events.db (nothing is lost). Only when events.db itself is damaged is the
        // person told.
        Err(e) if e.is_damaged_file() => {
            web_sys::console::warn_1(
                &format!("tandem worker: {e}; building the views again from the log").into(),
            );
            let (wal, journal) = (format!("{views}-wal"), format!("{views}-journal"));
            ctx.remove_files(&[views, &wal, &journal]);
            open()
        }
        other => other,
    };
    opened
    .map(|replica| (replica, false))
    .map_err(|e| {
        // A damaged file stays damaged: said once, not retried every few seconds forever.
        if e.is_newer_file() {
            OwnFailure {
                kind: Unavailable::Storage,
                damaged: true,
                reason: format!(
                    "This device's copy of your to-dos was written by a newer version of Tandem than this page ({e}). Reload to get that version; starting afresh loses what it had not sent."
                ),
                transient: false,
            }
        } else if e.is_damaged_file() {
            OwnFailure {
                kind: Unavailable::Storage,
                damaged: true,
                reason: format!(
                    "This device's copy of your to-dos is damaged ({e}), so Tandem stopped trying to open it."
                ),
                transient: false,
            }
        } else {
            OwnFailure {
                damaged: false,
                kind: Unavailable::Storage,
                reason: format!("cannot open the local store: {e}"),
                transient: true,
            }
        }
    })
}

/// Whether this worker can reach OPFS at all: `navigator.storage.getDirectory` exists and
/// gives a directory (private windows of some browsers have no such method, or refuse it).
async fn opfs_reachable() -> bool {
    let storage: JsValue = scope().navigator().storage().into();
    let Ok(get) = js_sys::Reflect::get(&storage, &"getDirectory".into()) else {
        return false;
    };
    let Some(get) = get.dyn_ref::<js_sys::Function>() else {
        return false;
    };
    match get.call0(&storage) {
        Ok(promise) => match promise.dyn_into::<js_sys::Promise>() {
            Ok(promise) => JsFuture::from(promise).await.is_ok(),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Asks the browser not to evict the databases under storage pressure (an evicted outbox is
/// lost work). The answer changes nothing here; browsers grant it by their own rules.
fn ask_for_persistence() {
    let navigator = scope().navigator();
    let storage = navigator.storage();
    if let Ok(promise) = storage.persist() {
        spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
    }
}

/// Whom the owner answers: its own tab's page, or another tab's (through that tab's worker).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Client {
    Page,
    Tab(String),
}

/// What a page has asked to be told about the handshake.
#[derive(Default)]
struct Handshake {
    /// The server head the page rendered, until the views reach it.
    waiting_for: Option<u64>,
    /// Whether the page was told the store is behind (it switched without waiting).
    told_behind: bool,
}

/// The running worker: the replica shared by every workspace a page opened, each with its
/// own [`Space`] (data service, sync loop, live socket, status).
struct App {
    replica: SharedReplica,
    online: Cell<bool>,
    spaces: RefCell<HashMap<WorkspaceId, Rc<Space>>>,
    /// The workspace each page shows (from its `open`).
    clients: RefCell<HashMap<Client, WorkspaceId>>,
    /// Change sets not yet sent to the other tabs, merged per workspace, and whether a send is
    /// scheduled.
    tab_batch: RefCell<Vec<(Option<String>, Changes)>>,
    tab_batch_scheduled: Cell<bool>,
    /// Where a recovery from a restored server stands.
    recovery: Cell<Recovery>,
    ctx: Rc<Context>,
}

/// A recovery from a restored server (docs/protocol.md "A restored server").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// None needed (or not noticed yet).
    Idle,
    /// Running: the store still serves (commands are kept in the old outbox and adopted).
    Running,
    /// Done and copied over events.db: this worker serves nothing more; its page starts a new
    /// one, which opens the recovered log.
    Done,
}

/// One workspace served: what its pages ask goes to its service; its sync runs on its own.
struct Space {
    ctx: Rc<Context>,
    workspace: WorkspaceId,
    service: Service,
    notifier: Notifier,
    wake: Wake,
    status: RefCell<SyncStatus>,
    /// Each page's handshake, until its views caught up.
    handshakes: RefCell<HashMap<Client, Handshake>>,
    live: RefCell<Option<LiveSocket>>,
    live_attempts: Cell<u32>,
    push_scheduled: Cell<bool>,
    /// Whether a sync cycle has finished since the space started (the first answers
    /// `connecting` until then).
    synced_once: Cell<bool>,
}

impl App {
    fn start(replica: SharedReplica, ctx: Rc<Context>) -> Result<Rc<Self>, String> {
        // Change tracking on the views (one tracker for every workspace).
        tandem_store::changes::track(replica.borrow().views().connection())
            .map_err(|e| format!("cannot open the local views: {e}"))?;
        let online = scope().navigator().on_line();
        Ok(Rc::new(Self {
            replica,
            online: Cell::new(online),
            spaces: RefCell::default(),
            clients: RefCell::default(),
            tab_batch: RefCell::default(),
            tab_batch_scheduled: Cell::new(false),
            recovery: Cell::new(Recovery::Idle),
            ctx,
        }))
    }

    /// The space of `workspace`, started on first use (its sync loop, live socket, heal timer).
    fn space(
        self: &Rc<Self>,
        workspace: WorkspaceId,
        read_only: bool,
    ) -> Result<Rc<Space>, String> {
        if let Some(space) = self.spaces.borrow().get(&workspace) {
            return Ok(Rc::clone(space));
        }
        let mut service = Service::new(Rc::clone(&self.replica), workspace)
            .map_err(|e| format!("cannot open the local views: {e}"))?
            .read_only(read_only);
        let ctx = Rc::clone(&self.ctx);
        service.on_rebuild(move |done, total| {
            ctx.to_every_page(WorkerMessage::Rebuilding { done, total })
        });
        let client = SyncClient::new(
            Rc::clone(&self.replica),
            FetchTransport::new(Rc::clone(&self.ctx), workspace),
            workspace,
            Settings::default(),
        )
        .map_err(|e| format!("cannot start sync: {e}"))?;
        let space = Rc::new(Space {
            ctx: Rc::clone(&self.ctx),
            workspace,
            service,
            notifier: client.notifier(),
            wake: Wake::default(),
            status: RefCell::new(SyncStatus::default()),
            handshakes: RefCell::default(),
            live: RefCell::new(None),
            live_attempts: Cell::new(0),
            push_scheduled: Cell::new(false),
            synced_once: Cell::new(false),
        });
        self.spaces
            .borrow_mut()
            .insert(workspace, Rc::clone(&space));
        space.publish_status(&client, self.online.get(), &self.replica);
        spawn_local(Rc::clone(self).sync_loop(Rc::clone(&space), client));
        Rc::clone(self).connect_live(Rc::clone(&space));
        Rc::clone(self).heal_timer(Rc::clone(&space));
        Ok(space)
    }

    fn spaces(&self) -> Vec<Rc<Space>> {
        self.spaces.borrow().values().cloned().collect()
    }

    /// To one page. Change sets still batched for the other tabs go first, so a page never
    /// gets a reply before the rows it made.
    fn send(&self, client: &Client, message: WorkerMessage) {
        match client {
            Client::Page => post(&message),
            Client::Tab(tab) => {
                self.send_tab_batch();
                self.ctx.to_tabs(&TabMessage::ToTab {
                    tab: tab.clone(),
                    epoch: self.ctx.epoch.get(),
                    message,
                });
            }
        }
    }

    fn on_message(self: &Rc<Self>, client: &Client, message: PageMessage) {
        // Recovered: the next owner answers (every page sends its unanswered requests again).
        if self.recovery.get() == Recovery::Done {
            return;
        }
        match message {
            PageMessage::Open {
                head,
                log_id,
                workspace_id,
                role,
            } => {
                let Ok(workspace) = workspace_id.parse::<WorkspaceId>() else {
                    self.send(
                        client,
                        WorkerMessage::Unavailable {
                            damaged: false,
                            kind: Unavailable::Storage,
                            reason: format!("the page named no workspace ({workspace_id:?})"),
                        },
                    );
                    return;
                };
                let read_only = role.as_deref() == Some("reader");
                match self.space(workspace, read_only) {
                    Ok(space) => {
                        // The role the page was rendered with now (a member demoted to
                        // reader, or the other way round).
                        space.service.set_read_only(read_only);
                        self.clients.borrow_mut().insert(client.clone(), workspace);
                        self.open(&space, client, head, log_id);
                    }
                    Err(reason) => self.send(
                        client,
                        WorkerMessage::Unavailable {
                            damaged: false,
                            kind: Unavailable::Storage,
                            reason,
                        },
                    ),
                }
            }
            // The account's own, whatever page asks (sign-out counts it from any page).
            PageMessage::Request {
                id,
                request: tandem_protocol::data::Request::Unsent,
            } => {
                let reply = match self.replica.borrow().pending_len() {
                    Ok(n) => Reply::Unsent { events: n as u64 },
                    Err(e) => Reply::Failed {
                        reason: e.to_string(),
                    },
                };
                self.send(client, WorkerMessage::Reply { id, reply });
            }
            PageMessage::Request { id, request } => {
                let space = self
                    .clients
                    .borrow()
                    .get(client)
                    .and_then(|ws| self.spaces.borrow().get(ws).cloned());
                let Some(space) = space else {
                    self.send(
                        client,
                        WorkerMessage::Reply {
                            id,
                            reply: Reply::Failed {
                                reason: "the page has not opened a workspace yet".into(),
                            },
                        },
                    );
                    return;
                };
                let is_command = matches!(request, tandem_protocol::data::Request::Command { .. });
                // A command's views are committed after its change set is posted, while the
                // page renders, and before anything else is answered (docs/protocol.md).
                if is_command {
                    self.replica.borrow_mut().hold_views();
                }
                let reply = space.service.request(request);
                // The change set first: the page never sees a reply before the rows it made.
                // A command's carries the undo labels it leaves (no request after each change);
                // a refused undo may have dropped its step too.
                let undo = if is_command {
                    match space.service.undo_labels() {
                        Ok(labels) => Some((space.service.workspace().to_string(), labels)),
                        Err(e) => {
                            web_sys::console::error_1(&format!("tandem worker: {e}").into());
                            None
                        }
                    }
                } else {
                    None
                };
                // The unsent count before the rows: a row never shows while the status still
                // says everything is synced.
                if is_command && matches!(reply, Reply::Done { events } if events > 0) {
                    self.schedule_push(&space);
                    self.refresh_pending();
                }
                self.flush_changes_with(undo);
                if let Err(e) = self.replica.borrow_mut().release_views() {
                    web_sys::console::error_1(&format!("tandem worker: {e}").into());
                }
                self.send(client, WorkerMessage::Reply { id, reply });
            }
            PageMessage::Network { online } => {
                self.online.set(online);
                for space in self.spaces() {
                    if online {
                        space.notifier.notify(Input::Retry);
                        space.live_attempts.set(0);
                        Rc::clone(self).connect_live(Rc::clone(&space));
                    } else if let Some(live) = space.live.borrow_mut().take() {
                        live.socket.set_onmessage(None);
                        live.socket.set_onclose(None);
                        let _ = live.socket.close();
                        // Its handlers go with it: the close handler no longer finds it current.
                        spawn_local(async move { drop(live) });
                    }
                    space.wake.wake();
                    space.update_status(|s| {
                        if !online {
                            s.state = SyncState::Offline;
                        }
                    });
                }
            }
            PageMessage::Focus => {
                for space in self.spaces() {
                    space.notifier.notify(Input::Tick);
                    space.wake.wake();
                }
            }
            PageMessage::SyncNow => {
                // Every workspace with something unsent too, opened by a page or not.
                let waiting = self
                    .replica
                    .borrow()
                    .log()
                    .outbox_workspaces()
                    .unwrap_or_default();
                for ws in waiting {
                    let _ = self.space(ws, false);
                }
                for space in self.spaces() {
                    space.notifier.notify(Input::Retry);
                    space.wake.wake();
                }
            }
        }
    }

    /// A page is hydrated and shows the server's views of `space` at `head`: answer with the
    /// store's state, then say when the views have caught up with what the page shows.
    fn open(&self, space: &Space, client: &Client, head: u64, log_id: Option<String>) {
        let ws = space.workspace;
        let (cursor, device_id, clock, known_log) = {
            let replica = self.replica.borrow();
            (
                replica.cursor(ws).unwrap_or(0),
                replica.log().device_id().to_string(),
                clock(&replica).unwrap_or_default(),
                replica.log().server_log_id(ws).ok().flatten(),
            )
        };
        self.send(
            client,
            WorkerMessage::Ready {
                cursor,
                device_id,
                clock,
            },
        );
        self.send(
            client,
            WorkerMessage::Sync {
                status: space.status.borrow().clone(),
                workspace_id: Some(ws.to_string()),
            },
        );
        // Another server log than the one this device syncs with (a restored server): its
        // heads are not comparable with this device's; switch now and say the store is behind.
        let other_log = matches!((&known_log, &log_id), (Some(a), Some(b)) if a != b);
        if other_log {
            self.send(client, WorkerMessage::CaughtUp { behind: true });
            return;
        }
        space.handshakes.borrow_mut().insert(
            client.clone(),
            Handshake {
                waiting_for: Some(head),
                told_behind: false,
            },
        );
        if self.projected(ws) >= head {
            self.check_caught_up(space, false);
        } else if !self.online.get() {
            self.check_caught_up(space, true);
        } else {
            space.notifier.notify(Input::HeadAnnounced { head });
            space.wake.wake();
        }
    }

    /// How far the views of `ws` are projected in the server log (pulled pages are stored
    /// first and projected after the last one).
    fn projected(&self, ws: WorkspaceId) -> u64 {
        self.replica.borrow().views().checkpoint(ws).unwrap_or(0)
    }

    /// After a sync step: each page is told once the views reach the head it rendered. When
    /// sync fails first, it is told the store is behind (so it switches anyway), and told
    /// again once the views do reach that head.
    fn check_caught_up(&self, space: &Space, failed: bool) {
        let projected = self.projected(space.workspace);
        let mut tell = Vec::new();
        space.handshakes.borrow_mut().retain(|client, handshake| {
            let Some(head) = handshake.waiting_for else {
                return false;
            };
            if projected >= head {
                tell.push((client.clone(), false));
                return false;
            }
            if failed && !handshake.told_behind {
                handshake.told_behind = true;
                tell.push((client.clone(), true));
            }
            true
        });
        for (client, behind) in tell {
            self.send(&client, WorkerMessage::CaughtUp { behind });
        }
    }

    /// The change sets of what was just committed, per workspace: to this tab's page at once,
    /// and merged into the next batch for the other tabs.
    fn flush_changes(self: &Rc<Self>) {
        self.flush_changes_with(None);
    }

    /// [`Self::flush_changes`], with a workspace's undo labels after a command.
    fn flush_changes_with(self: &Rc<Self>, undo: Option<(String, UndoLabels)>) {
        let mut parts = match tandem_store::changes::take_by_workspace(
            self.replica.borrow().views().connection(),
        ) {
            Ok(parts) => parts,
            Err(e) => {
                web_sys::console::error_1(&format!("tandem worker: {e}").into());
                return;
            }
        };
        if let Some((workspace, labels)) = undo {
            let workspace = Some(workspace);
            match parts.iter_mut().find(|(ws, _)| *ws == workspace) {
                Some((_, changes)) => changes.undo = Some(labels),
                None => parts.push((
                    workspace,
                    Changes {
                        undo: Some(labels),
                        ..Changes::default()
                    },
                )),
            }
        }
        if parts.is_empty() {
            return;
        }
        for (workspace_id, changes) in parts {
            {
                let mut batch = self.tab_batch.borrow_mut();
                match batch.iter_mut().find(|(ws, _)| *ws == workspace_id) {
                    Some((_, merged)) => merged.merge(changes.clone()),
                    None => batch.push((workspace_id.clone(), changes.clone())),
                }
            }
            post(&WorkerMessage::Changed {
                changes,
                workspace_id,
            });
        }
        if !self.tab_batch_scheduled.replace(true) {
            let app = Rc::clone(self);
            spawn_local(async move {
                sleep_ms(TAB_BATCH_MS).await;
                app.send_tab_batch();
            });
        }
    }

    /// Sends the other tabs the change sets merged since the last batch.
    fn send_tab_batch(&self) {
        self.tab_batch_scheduled.set(false);
        let batch = std::mem::take(&mut *self.tab_batch.borrow_mut());
        for (workspace_id, changes) in batch {
            self.ctx.to_tabs(&TabMessage::ToAll {
                epoch: self.ctx.epoch.get(),
                message: WorkerMessage::Changed {
                    changes,
                    workspace_id,
                },
            });
        }
    }

    /// Every space's pending count (the outbox is the account's; each space shows its own).
    fn refresh_pending(&self) {
        for space in self.spaces() {
            let pending = self
                .replica
                .borrow()
                .pending_len_in(space.workspace)
                .unwrap_or(0) as u64;
            space.update_status(|s| s.pending = pending);
        }
    }

    fn schedule_push(self: &Rc<Self>, space: &Rc<Space>) {
        if space.push_scheduled.replace(true) {
            return;
        }
        let space = Rc::clone(space);
        spawn_local(async move {
            sleep_ms(PUSH_DEBOUNCE_MS).await;
            space.push_scheduled.set(false);
            space.notifier.notify(Input::LocalChange);
            space.wake.wake();
        });
    }

    /// The server's log is not the one this device synced with (restored from a backup): the
    /// device recovers as native clients do, once, retrying while it fails.
    fn start_recovery(self: Rc<Self>) {
        if self.recovery.get() != Recovery::Idle {
            return;
        }
        // A store in memory has no files to recover into, and a new worker would start empty:
        // it keeps what it has and says so (its tab closing loses the unsent changes anyway).
        if self.ctx.memory.get() {
            self.recovery_notice(
                "The server was restored from a backup. This window keeps your data in memory only and cannot take the server's copy by itself: copy what you have not sent elsewhere before reloading.".into(),
            );
            return;
        }
        self.recovery.set(Recovery::Running);
        spawn_local(async move {
            loop {
                self.recovery_notice(
                    "The server was restored from a backup: this device is taking its copy and will send again what the copy lacks. Your changes are kept.".into(),
                );
                match self.recover().await {
                    Ok(adopted) => {
                        web_sys::console::info_1(
                            &format!(
                                "tandem worker: recovered from a restored server; {adopted} event(s) to send again"
                            )
                            .into(),
                        );
                        self.recovery.set(Recovery::Done);
                        post(&WorkerMessage::Restart);
                        return;
                    }
                    Err(reason) => {
                        web_sys::console::warn_1(
                            &format!("tandem worker: recovery failed: {reason}").into(),
                        );
                        self.recovery_notice(format!(
                            "The server was restored from a backup, and this device could not take its copy yet ({reason}); it tries again soon. Your changes are kept."
                        ));
                        sleep_ms(RECOVERY_RETRY_MS).await;
                    }
                }
            }
        });
    }

    fn recovery_notice(&self, text: String) {
        for space in self.spaces() {
            space.update_status(|s| s.notice = Some(text.clone()));
        }
    }

    /// Recovery (docs/protocol.md "A restored server"): fresh databases beside the old ones,
    /// the restored server's log pulled into them for every workspace the device holds, the
    /// device's own events that log lacks and its outbox re-recorded there
    /// ([`Replica::adopt`]); then — with no await in between, so no command falls between
    /// the two — the fresh log is marked recovered, replaces the old one and is copied over
    /// events.db in one step (the views are built again from it; a copy that fails is done by
    /// the next open, [`finish_recovery`]). Returns how many events will be sent again. Until
    /// the mark, the old files are untouched and the store serves as before.
    async fn recover(self: &Rc<Self>) -> Result<usize, String> {
        self.ctx.remove_files(&RECOVERY_FILES);
        let (device, workspaces) = {
            let replica = self.replica.borrow();
            let log = replica.log();
            let mut workspaces: Vec<WorkspaceId> = log
                .heads()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(ws, _)| ws)
                .collect();
            workspaces.extend(log.outbox_workspaces().map_err(|e| e.to_string())?);
            workspaces.extend(self.spaces.borrow().keys().copied());
            workspaces.sort();
            workspaces.dedup();
            (log.device_id(), workspaces)
        };
        let fresh = open_files(RECOVERY_EVENTS, RECOVERY_VIEWS, device)
            .map_err(|e| format!("cannot open fresh files: {e}"))?;
        let fresh: SharedReplica = Rc::new(RefCell::new(fresh));
        for ws in workspaces {
            let mut client = SyncClient::new(
                Rc::clone(&fresh),
                FetchTransport::new(Rc::clone(&self.ctx), ws),
                ws,
                Settings::default(),
            )
            .map_err(|e| e.to_string())?;
            client.notify(Input::Tick, now_ms(), random_u64());
            loop {
                let action = client.run(now_ms, random_u64).await;
                // A workspace this account may no longer open: nothing of it to take (its
                // unsent events are re-recorded anyway, and refused when pushed).
                if matches!(
                    client.refusal,
                    Some(ErrorCode::Forbidden | ErrorCode::NotFound)
                ) {
                    break;
                }
                if let Some(error) = &client.last_error {
                    return Err(error.clone());
                }
                match action {
                    Action::Wait { until_ms } => {
                        let ms = until_ms.saturating_sub(now_ms()).min(5_000);
                        sleep_ms(i32::try_from(ms).unwrap_or(5_000)).await;
                    }
                    _ => break,
                }
            }
        }
        let mut fresh = Rc::try_unwrap(fresh)
            .map_err(|_| "the fresh files are still in use".to_string())?
            .into_inner();
        let adopted = fresh
            .adopt(&self.replica.borrow())
            .map_err(|e| format!("cannot re-record this device's events: {e}"))?;
        // From here the recovered log is the device's: an open finishes the copy below if it
        // does not happen now.
        fresh
            .log()
            .mark_recovered()
            .map_err(|e| format!("cannot mark the recovered log: {e}"))?;
        // The old replica closes here (its files are free), and its log is replaced.
        drop(std::mem::replace(&mut *self.replica.borrow_mut(), fresh));
        match self.replica.borrow().log().copy_over("events.db") {
            Ok(()) => self
                .ctx
                .remove_files(&["views.db", "views.db-wal", "views.db-journal"]),
            Err(e) => web_sys::console::warn_1(
                &format!("tandem worker: the recovered log is copied at the next open: {e}").into(),
            ),
        }
        Ok(adopted)
    }

    fn heal_timer(self: Rc<Self>, space: Rc<Space>) {
        spawn_local(async move {
            loop {
                sleep_ms(HEAL_EVERY_MS).await;
                space.notifier.notify(Input::Tick);
                space.wake.wake();
            }
        });
    }

    /// Runs a space's engine whenever there is something to do; waits for the engine's time,
    /// a command, a live head, the network or the heal timer otherwise. A workspace the server
    /// refuses (signed out, no longer a member) waits until the page or the network says
    /// something changed (DESIGN.md rule 23: its outbox is kept).
    async fn sync_loop(self: Rc<Self>, space: Rc<Space>, mut client: SyncClient<FetchTransport>) {
        loop {
            if !self.online.get() {
                space.publish_status(&client, false, &self.replica);
                self.check_caught_up(&space, true);
                space.wake.wait(None).await;
                continue;
            }
            space.update_status(|s| {
                if s.state == SyncState::Offline {
                    s.state = SyncState::Connecting;
                }
            });
            let action = client.run(now_ms, random_u64).await;
            space.synced_once.set(true);
            self.flush_changes();
            for notice in client.notices.drain(..) {
                let text = match notice {
                    Notice::ClockCorrected {
                        ahead_ms,
                        restamped,
                    } => format!(
                        "This device's clock was {} s ahead of the server's; {restamped} unsent change(s) were re-stamped.",
                        ahead_ms / 1_000
                    ),
                    Notice::SetAside { reason, .. } => {
                        format!("The server refused a change for good; it is kept aside: {reason}")
                    }
                };
                space.update_status(|s| s.notice = Some(text));
            }
            space.publish_status(&client, true, &self.replica);
            if client.log_changed().is_some() {
                Rc::clone(&self).start_recovery();
            }
            // Anything but a clean cycle counts: errors, no answer, BUSY or a conflict backing off.
            let failed = client.last_error.is_some()
                || client.engine().failures() > 0
                || client.state() != tandem_store::driver::SyncState::Online;
            self.check_caught_up(&space, failed);
            let denied = space.status.borrow().denied.is_some();
            let wait = match action {
                // Refused for good: no retries until something changes (a sync now, the
                // network, a page opening it again).
                _ if denied => None,
                Action::Wait { until_ms } => Some(until_ms.saturating_sub(now_ms())),
                _ => None,
            };
            space.wake.wait(wait).await;
        }
    }

    /// Opens a space's live socket (unless offline or already open); a head above the cursor
    /// makes the engine pull. Closed sockets reconnect with backoff and full jitter; one the
    /// server closed because access ended (4401, 4403) says why and does not reconnect.
    fn connect_live(self: Rc<Self>, space: Rc<Space>) {
        if !self.online.get() || space.live.borrow().is_some() {
            return;
        }
        let Some(url) = live_url(space.workspace) else {
            return;
        };
        let socket = match web_sys::WebSocket::new(&url) {
            Ok(socket) => socket,
            Err(_) => {
                self.reconnect_live_later(space);
                return;
            }
        };
        let on_message = {
            let space = Rc::clone(&space);
            // The log this socket speaks for, as its first message said.
            let mut log_id = String::new();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Some(text) = event.data().as_string() else {
                    return;
                };
                // A frame no announcement could fill is not parsed (nor kept).
                if text.len() > MAX_LIVE_FRAME_BYTES {
                    web_sys::console::warn_1(
                        &format!(
                            "tandem worker: a live frame of {} bytes ignored",
                            text.len()
                        )
                        .into(),
                    );
                    // Something happened all the same: a pull finds out what.
                    space.notifier.notify(Input::Tick);
                    space.wake.wake();
                    return;
                }
                if let Ok(LiveMessage::Head {
                    head,
                    log_id: first,
                    events,
                    people,
                    ..
                }) = serde_json::from_str::<LiveMessage>(&text)
                {
                    if let Some(first) = first {
                        log_id = first;
                    }
                    space.live_attempts.set(0);
                    // Events continuing the cursor are stored as they come; else a pull.
                    space.notifier.live(&log_id, head, events, people);
                    space.wake.wake();
                }
            })
        };
        let app = Rc::clone(&self);
        let this = socket.clone();
        let closed_space = Rc::clone(&space);
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let space = &closed_space;
            let current = space
                .live
                .borrow()
                .as_ref()
                .is_some_and(|l| l.socket == this);
            if !current {
                return;
            }
            let closed = space.live.borrow_mut().take();
            // Dropped on the next turn: a handler must not drop itself while it runs.
            spawn_local(async move { drop(closed) });
            let (code, reason) = event
                .dyn_ref::<web_sys::CloseEvent>()
                .map(|e| (e.code(), e.reason()))
                .unwrap_or((0, String::new()));
            let denied = match code {
                4401 => Some(Denied::SignedOut),
                4403 => Some(Denied::Removed),
                _ => None,
            };
            if let Some(denied) = denied {
                space.update_status(|s| {
                    s.denied = Some(denied);
                    s.state = SyncState::Error;
                    s.error = Some(reason.clone());
                });
                return;
            }
            Rc::clone(&app).reconnect_live_later(Rc::clone(space));
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        *space.live.borrow_mut() = Some(LiveSocket {
            socket,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn reconnect_live_later(self: Rc<Self>, space: Rc<Space>) {
        if !self.online.get() {
            return;
        }
        let attempt = space.live_attempts.get().saturating_add(1);
        space.live_attempts.set(attempt);
        let (first, last) = LIVE_BACKOFF_MS;
        let ceiling = first.saturating_mul(1u64 << attempt.min(20)).min(last);
        let wait = (random_u64() % ceiling.max(1)) as i32;
        spawn_local(async move {
            sleep_ms(wait).await;
            // A pull heals whatever was announced while the socket was down.
            space.notifier.notify(Input::Tick);
            space.wake.wake();
            self.connect_live(space);
        });
    }
}

impl Space {
    fn update_status(&self, change: impl FnOnce(&mut SyncStatus)) {
        let before = self.status.borrow().clone();
        change(&mut self.status.borrow_mut());
        if *self.status.borrow() != before {
            self.post_status();
        }
    }

    fn post_status(&self) {
        self.ctx.to_every_page(WorkerMessage::Sync {
            status: self.status.borrow().clone(),
            workspace_id: Some(self.workspace.to_string()),
        });
    }

    fn publish_status<T: Transport>(
        &self,
        client: &SyncClient<T>,
        online: bool,
        replica: &SharedReplica,
    ) {
        let pending = replica.borrow().pending_len_in(self.workspace).unwrap_or(0) as u64;
        let synced_once = self.synced_once.get();
        let error = client.last_error.clone();
        let denied = match client.refusal {
            Some(ErrorCode::Unauthenticated) => Some(Denied::SignedOut),
            _ if client.push_forbidden => Some(Denied::ReadOnly),
            Some(ErrorCode::Forbidden) => Some(Denied::Removed),
            _ => None,
        };
        let state = if !online {
            SyncState::Offline
        } else {
            match client.state() {
                tandem_store::driver::SyncState::Error => SyncState::Error,
                tandem_store::driver::SyncState::Offline => SyncState::Offline,
                tandem_store::driver::SyncState::Syncing => SyncState::Syncing,
                tandem_store::driver::SyncState::Online if !synced_once => SyncState::Connecting,
                tandem_store::driver::SyncState::Online => SyncState::Online,
            }
        };
        self.update_status(|s| {
            s.state = state;
            s.pending = pending;
            s.error = error;
            // A refusal ends only with a clean cycle; a closed socket's verdict stands until
            // then too.
            if denied.is_some() || state == SyncState::Online {
                s.denied = denied;
            }
            if state == SyncState::Online {
                s.last_synced_ms = Some(now_ms());
            }
        });
    }
}

fn live_url(workspace: WorkspaceId) -> Option<String> {
    let location = scope().location();
    let scheme = if location.protocol() == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!(
        "{scheme}://{}/api/sync/live?workspace_id={workspace}",
        location.host(),
    ))
}

/// The live socket with its handlers (dropped together, after the socket closed).
struct LiveSocket {
    socket: web_sys::WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(JsValue)>,
}

/// Wakes the sync loop: a wake before the wait is not lost.
#[derive(Clone, Default)]
struct Wake {
    resolve: Rc<RefCell<Option<js_sys::Function>>>,
    pending: Rc<Cell<bool>>,
}

impl Wake {
    fn wake(&self) {
        self.pending.set(true);
        if let Some(resolve) = self.resolve.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }

    /// Waits for a wake, or `ms` when given.
    async fn wait(&self, ms: Option<u64>) {
        if self.pending.replace(false) {
            return;
        }
        let slot = Rc::clone(&self.resolve);
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(ms) = ms {
                let ms = i32::try_from(ms).unwrap_or(i32::MAX);
                let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
            *slot.borrow_mut() = Some(resolve);
        });
        let _ = JsFuture::from(promise).await;
        self.resolve.borrow_mut().take();
        self.pending.set(false);
    }
}

/// The sync endpoints over `fetch`: the documented JSON (docs/protocol.md). A 4xx with the
/// protocol's body is a refusal; anything else without an answer is unreachable.
struct FetchTransport {
    ctx: Rc<Context>,
    /// Whether the last pull said there was more (a download under way).
    downloading: bool,
    /// The workspace it syncs (its progress is shown by that workspace's pages).
    workspace: WorkspaceId,
    /// The next pull of a download, sent before the page before it is stored.
    prefetched: Option<Sent>,
}

impl FetchTransport {
    fn new(ctx: Rc<Context>, workspace: WorkspaceId) -> Self {
        Self {
            ctx,
            downloading: false,
            workspace,
            prefetched: None,
        }
    }

    async fn post<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, TransportError> {
        let body = serde_json::to_string(request)
            .map_err(|e| TransportError::Unreachable(format!("cannot encode the request: {e}")))?;
        self.start(path, body)?.finish().await
    }

    /// Sends a request now (`fetch` dispatches it at once); [`Sent::finish`] awaits the answer.
    fn start(&self, path: &str, body: String) -> Result<Sent, TransportError> {
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(&body));
        let headers = web_sys::Headers::new().map_err(js_error)?;
        headers
            .set("content-type", "application/json")
            .map_err(js_error)?;
        // The account this device's data belongs to: the server refuses (401) a cookie of
        // another account (one signed in meanwhile in another tab), never mixing accounts.
        headers
            .set("x-tandem-user", &self.ctx.account)
            .map_err(js_error)?;
        init.set_headers(&headers);
        let abort = web_sys::AbortController::new().map_err(js_error)?;
        init.set_signal(Some(&abort.signal()));
        let timer = {
            let abort = abort.clone();
            Closure::once(move || abort.abort())
        };
        let timer_id = scope()
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                timer.as_ref().unchecked_ref(),
                FETCH_TIMEOUT_MS,
            )
            .ok();
        Ok(Sent {
            body,
            answer: scope().fetch_with_str_and_init(path, &init),
            abort,
            _timer: timer,
            timer_id,
            finished: false,
        })
    }
}

/// A request on its way ([`FetchTransport::start`]). Dropped before its answer was read (a
/// prefetched pull nobody asked for after all, a sync loop that ended), it is aborted and its
/// timeout cleared: the timer must never fire into its dropped closure (an uncaught error
/// that would end the worker).
struct Sent {
    /// What was sent (a prefetched pull is used only for the same request).
    body: String,
    answer: js_sys::Promise,
    abort: web_sys::AbortController,
    _timer: Closure<dyn FnMut()>,
    timer_id: Option<i32>,
    /// Whether its answer was read to the end.
    finished: bool,
}

impl Drop for Sent {
    fn drop(&mut self) {
        if let Some(id) = self.timer_id.take() {
            scope().clear_timeout_with_handle(id);
        }
        if !self.finished {
            self.abort.abort();
            // The aborted promise rejects; handled, so it is not reported as uncaught.
            let answer = self.answer.clone();
            spawn_local(async move {
                let _ = JsFuture::from(answer).await;
            });
        }
    }
}

impl Sent {
    /// The answer, decoded from its bytes (bounded), or the error it stands for.
    async fn finish<Resp: serde::de::DeserializeOwned>(mut self) -> Result<Resp, TransportError> {
        let answer = async {
            let response: web_sys::Response = JsFuture::from(self.answer.clone())
                .await
                .map_err(|e| TransportError::Unreachable(describe(&e)))?
                .unchecked_into();
            let status = response.status();
            let retry_after_ms = response
                .headers()
                .get("retry-after")
                .ok()
                .flatten()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map(|s| s.saturating_mul(1_000));
            let body = read_bounded(&response, MAX_ANSWER_BYTES).await?;
            if (200..300).contains(&status) {
                // From the bytes: no copy into a JS string and back to UTF-8.
                return serde_json::from_slice(&body).map_err(|e| {
                    TransportError::Unreachable(format!("the server's answer is unreadable: {e}"))
                });
            }
            match serde_json::from_slice::<tandem_protocol::sync::SyncError>(&body) {
                Ok(mut error) => {
                    if error.retry_after_ms.is_none() {
                        error.retry_after_ms = retry_after_ms;
                    }
                    Err(TransportError::Refused(error))
                }
                // The server (or a proxy before it) answered, but not in the protocol: an error
                // with its reason, not "offline".
                Err(_) => {
                    let mut error = tandem_protocol::sync::SyncError::new(
                        tandem_protocol::sync::ErrorCode::Internal,
                        format!("the server answered HTTP {status}"),
                    );
                    error.retry_after_ms = retry_after_ms;
                    Err(TransportError::Refused(error))
                }
            }
        }
        .await;
        self.finished = true;
        answer
    }
}

impl Transport for FetchTransport {
    async fn push(&mut self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        self.post("/api/sync/push", request).await
    }

    async fn pull(&mut self, request: &PullRequest) -> Result<PullResponse, TransportError> {
        let body = serde_json::to_string(request)
            .map_err(|e| TransportError::Unreachable(format!("cannot encode the request: {e}")))?;
        let sent = match self.prefetched.take() {
            Some(sent) if sent.body == body => sent,
            // Another request (or none) was prefetched: dropped, it is aborted.
            _ => self.start("/api/sync/pull", body)?,
        };
        let response: PullResponse = sent.finish().await?;
        // A download of more than one page shows its progress; its last page says it is done
        // (stored = head), so the page's bar goes.
        let stored = response.events.last().map_or(request.cursor, |e| e.seq);
        if response.has_more || self.downloading {
            self.ctx.to_every_page(WorkerMessage::Progress {
                stored: if response.has_more {
                    stored
                } else {
                    response.head
                },
                head: response.head,
                workspace_id: Some(self.workspace.to_string()),
            });
        }
        self.downloading = response.has_more;
        Ok(response)
    }

    /// The next page of a download is on its way while this one is stored.
    fn prefetch_pull(&mut self, request: &PullRequest) {
        // One at a time: a stale one is dropped, and so aborted.
        self.prefetched = None;
        let Ok(body) = serde_json::to_string(request) else {
            return;
        };
        self.prefetched = self.start("/api/sync/pull", body).ok();
    }
}

/// The most a sync answer may hold. The server's pull pages are 4 MiB by default
/// (`--pull-bytes`); this leaves room for a larger setting while a hostile or broken server
/// (or a proxy before it) cannot exhaust the worker's memory.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The most a live frame may hold (a head announcement is a few dozen bytes).
const MAX_LIVE_FRAME_BYTES: usize = 64 * 1024;

/// Reads a response's body, refusing one over `limit` bytes: by its declared length before
/// reading anything, and while reading (a body without a length, or one longer than it said).
async fn read_bounded(
    response: &web_sys::Response,
    limit: usize,
) -> Result<Vec<u8>, TransportError> {
    // The server answered, but not usably: an error with its reason (retried, backing off),
    // not "offline".
    let too_large = |size: String| {
        TransportError::Refused(tandem_protocol::sync::SyncError::new(
            ErrorCode::Internal,
            format!("the server's answer is too large ({size} bytes; at most {limit})"),
        ))
    };
    let Some(stream) = response.body() else {
        return Ok(Vec::new());
    };
    let declared = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > limit as u64) {
        // Not read: the connection is let go at once.
        ignore_rejection(stream.cancel());
        return Err(too_large(length.to_string()));
    }
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::with_capacity(declared.map_or(0, |l| l as usize));
    loop {
        let chunk = match JsFuture::from(reader.read()).await {
            Ok(chunk) => chunk,
            Err(e) => {
                ignore_rejection(reader.cancel());
                return Err(TransportError::Unreachable(describe(&e)));
            }
        };
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(body);
        }
        let Some(bytes) = js_sys::Reflect::get(&chunk, &"value".into())
            .ok()
            .and_then(|v| v.dyn_into::<js_sys::Uint8Array>().ok())
        else {
            ignore_rejection(reader.cancel());
            return Err(TransportError::Unreachable(
                "the server's answer is not bytes".into(),
            ));
        };
        let len = bytes.length() as usize;
        if body.len() + len > limit {
            ignore_rejection(reader.cancel());
            return Err(too_large(format!("more than {}", body.len() + len)));
        }
        let start = body.len();
        body.resize(start + len, 0);
        bytes.copy_to(&mut body[start..]);
    }
}

/// A promise whose failure changes nothing (cancelling a stream being given up): handled, so
/// it is not reported as an uncaught rejection.
fn ignore_rejection(promise: js_sys::Promise) {
    let ignore = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
    let _ = promise.catch(&ignore);
    // Kept for the promise's life (a few bytes, only when an answer is given up).
    ignore.forget();
}

fn js_error(e: JsValue) -> TransportError {
    TransportError::Unreachable(describe(&e))
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// A fresh stamp through the SQL function `hlc_now()`.
fn clock(replica: &Replica) -> Result<String, tandem_store::rusqlite::Error> {
    replica
        .log()
        .connection()
        .query_row("SELECT hlc_now()", [], |r| r.get(0))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut random = [0u8; N];
    let filled = scope()
        .crypto()
        .and_then(|c| c.get_random_values_with_u8_array(&mut random).map(|_| ()));
    if filled.is_err() {
        // No CSPRNG in this worker: fall back to Math.random (ids stay unique in practice).
        for b in &mut random {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    random
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes::<8>())
}

/// A UUID v7 (time-ordered, DESIGN.md rule 2) from the clock and the browser's CSPRNG.
fn new_uuid_v7() -> uuid::Uuid {
    uuid::Builder::from_unix_timestamp_millis(now_ms(), &random_bytes::<10>()).into_uuid()
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if scope()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .is_err()
        {
            // No timer: resolve at once; callers loop with their own bounds.
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}
