//! The page's handle on the device's local store: the Dedicated Web Worker (crate `worker`)
//! that owns the OPFS databases. Requests go out as `tandem_protocol::data` messages with ids;
//! replies come back to their callbacks; change sets and sync status land in the [`Model`].
//! During SSR there is no worker: every call is a no-op there.

use leptos::prelude::*;
use tandem_protocol::data::{Command, PageMessage, Reply, Request};

use crate::model::Model;
use crate::snapshot::Snapshot;

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
}

/// Creates the handle and, in the browser, starts the worker.
pub fn provide_local(model: Model) -> Local {
    let local = Local {
        #[cfg(feature = "hydrate")]
        client: StoredValue::new_local(None),
        ready: RwSignal::new(false),
        behind: RwSignal::new(false),
        generation: RwSignal::new(0),
        device_id: RwSignal::new(None),
        memory: RwSignal::new(false),
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
    #[cfg(feature = "hydrate")]
    match browser::Client::start(model, local) {
        Ok(client) => local.client.set_value(Some(client)),
        Err(reason) => model.source.set(crate::model::Source::Unavailable(reason)),
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = model;
    local
}

pub fn use_local() -> Local {
    expect_context::<Local>()
}

impl Local {
    /// Sends a message (queued until the worker listens).
    pub fn send(&self, message: PageMessage) {
        #[cfg(feature = "hydrate")]
        self.client.with_value(|c| {
            if let Some(c) = c {
                c.send(message);
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = message;
    }

    /// Sends a request; `on_reply` gets its reply.
    pub fn request(&self, request: Request, on_reply: impl FnOnce(Reply) + 'static) {
        #[cfg(feature = "hydrate")]
        self.client.with_value(|c| match c {
            Some(c) => c.request(request, Box::new(on_reply)),
            None => on_reply(Reply::Failed {
                reason: "the local store is not running".into(),
            }),
        });
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = request;
            on_reply(Reply::Failed {
                reason: "the page is not running yet".into(),
            });
        }
    }

    /// For a page the server rendered no views for (the Trash, the inspector): when it is the
    /// first page of the session, the worker is told so and switches to the local store at once.
    pub fn open_without_server_view(&self) {
        let local = *self;
        Effect::new(move |_| {
            if !local.ready.get_untracked() {
                local.send(PageMessage::Open {
                    head: 0,
                    log_id: None,
                });
            }
        });
    }

    /// Runs a command with a fresh id (DESIGN.md rule 18).
    pub fn command(&self, command: Command, on_reply: impl FnOnce(Reply) + 'static) {
        self.request(
            Request::Command {
                command_id: new_id(),
                command,
            },
            on_reply,
        );
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

    /// The worker's bootstrap script (public/worker.js).
    const WORKER_URL: &str = "/worker.js";

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
    }

    impl Client {
        pub fn start(model: Model, local: Local) -> Result<Rc<Self>, String> {
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
            let worker = Worker::new_with_options(WORKER_URL, &options)
                .map_err(|e| format!("cannot start the local store: {e:?}"))?;
            let weak = Rc::downgrade(self);
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Some(client) = weak.upgrade() else { return };
                let Some(text) = event.data().as_string() else {
                    return;
                };
                match WorkerMessage::from_json(&text) {
                    Ok(message) => client.receive(message, model, local),
                    Err(e) => leptos::logging::warn!("tandem: {e}"),
                }
            });
            // A worker that cannot load fires a plain `error` Event; a failing one an ErrorEvent.
            let on_error =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                    let why = event
                        .dyn_ref::<ErrorEvent>()
                        .map(|e| e.message())
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| "its script could not be loaded".into());
                    model.source.set(Source::Unavailable(format!(
                        "The local store did not start: {why}."
                    )));
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

        /// Ends this tab's worker at once (releasing the store's lock and files to the next
        /// tab, if it owned them). Unanswered requests stay, to be sent again.
        fn stop_worker(&self) {
            self.serving.set(false);
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
            set_body_attribute("data-store", if owner { "owner" } else { "relay" });
            if matches!(self.model.source.get_untracked(), Source::Unavailable(_)) {
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
                WorkerMessage::Unavailable { reason, .. } => {
                    model.source.set(Source::Unavailable(reason))
                }
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
                WorkerMessage::Progress { stored, head } => model
                    .progress
                    .set((stored < head).then_some((stored, head))),
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
                WorkerMessage::Changed { changes } => {
                    if model.apply(changes) && local.ready.get_untracked() {
                        local.generation.update(|g| *g += 1);
                    }
                }
                WorkerMessage::Sync { status } => model.sync.set(status),
            }
        }
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
    /// part again when it comes back (`pageshow` from the back/forward cache, `resume`).
    fn release_on_pagehide(client: Rc<Client>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let stop = {
            let client = Rc::clone(&client);
            Closure::<dyn FnMut()>::new(move || client.stop_worker())
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
