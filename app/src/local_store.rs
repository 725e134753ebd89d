//! The page's handle on the device's local store. The store itself lives in a Dedicated Web
//! Worker (the `worker` crate) that owns the OPFS databases; the page talks to it with
//! [`WorkerRequest`]s and turns its [`WorkerReply`]s into a signal. On the server this handle
//! only carries the initial `Opening` state: there is no worker to talk to during SSR.

use leptos::prelude::*;
use tandem_protocol::worker::{StoreSummary, WorkerReply, WorkerRequest};

/// What the page knows about the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// The worker is starting and opening its databases.
    Opening,
    /// The store is open and holds this.
    Ready(StoreSummary),
    /// The worker reported an error or could not start.
    Failed(String),
}

impl StoreState {
    /// The state a worker reply leaves the store in.
    pub fn after(reply: WorkerReply) -> Self {
        match reply {
            WorkerReply::Ready { summary, .. } | WorkerReply::Summary { summary } => {
                Self::Ready(summary)
            }
            WorkerReply::Failed { message } => Self::Failed(message),
        }
    }
}

/// A copyable handle, provided as context by [`provide_local_store`].
#[derive(Clone, Copy)]
pub struct LocalStore {
    state: RwSignal<StoreState>,
    /// The device clock's stamp when the store opened (read through SQL `hlc_now()`).
    clock: RwSignal<Option<String>>,
    #[cfg(feature = "hydrate")]
    client: StoredValue<Option<browser::WorkerClient>, LocalStorage>,
}

/// Creates the page's local-store handle and, in the browser, starts the worker.
pub fn provide_local_store() -> LocalStore {
    let store = LocalStore {
        state: RwSignal::new(StoreState::Opening),
        clock: RwSignal::new(None),
        #[cfg(feature = "hydrate")]
        client: StoredValue::new_local(None),
    };
    provide_context(store);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| store.start());
    store
}

/// The local store provided by an ancestor component.
pub fn use_local_store() -> LocalStore {
    expect_context::<LocalStore>()
}

impl LocalStore {
    /// The current state, reactive.
    pub fn state(&self) -> ReadSignal<StoreState> {
        self.state.read_only()
    }

    /// The device clock's stamp when the store opened, reactive.
    pub fn clock(&self) -> ReadSignal<Option<String>> {
        self.clock.read_only()
    }

    /// Sends a request to the worker; its reply updates [`Self::state`].
    pub fn send(&self, request: WorkerRequest) {
        #[cfg(feature = "hydrate")]
        self.client.with_value(|client| match client {
            Some(client) => {
                if let Err(message) = client.send(&request) {
                    self.state.set(StoreState::Failed(message));
                }
            }
            None => self
                .state
                .set(StoreState::Failed("the local store is not running".into())),
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = request;
    }

    #[cfg(feature = "hydrate")]
    fn start(self) {
        let state = self.state;
        let clock = self.clock;
        let on_reply = move |reply: WorkerReply| {
            if let WorkerReply::Ready { clock: stamp, .. } = &reply {
                clock.set(Some(stamp.clone()));
            }
            let next = StoreState::after(reply);
            if matches!(next, StoreState::Ready(_)) {
                browser::mark_body_ready();
            }
            state.set(next);
        };
        match browser::WorkerClient::start(on_reply) {
            Ok(client) => self.client.set_value(Some(client)),
            Err(message) => state.set(StoreState::Failed(message)),
        }
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    //! The browser side: the `Worker` object and its message plumbing.

    use tandem_protocol::worker::{WorkerReply, WorkerRequest};
    use wasm_bindgen::prelude::*;
    use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

    /// The worker's bootstrap script (public/worker.js).
    const WORKER_URL: &str = "/worker.js";

    pub struct WorkerClient {
        worker: Worker,
        // Kept alive as long as the worker: dropping them would detach the handlers.
        _on_message: Closure<dyn FnMut(MessageEvent)>,
        _on_error: Closure<dyn FnMut(ErrorEvent)>,
    }

    impl WorkerClient {
        pub fn start(on_reply: impl Fn(WorkerReply) + Clone + 'static) -> Result<Self, String> {
            let options = WorkerOptions::new();
            options.set_type(WorkerType::Module);
            let worker = Worker::new_with_options(WORKER_URL, &options)
                .map_err(|e| format!("cannot start the local store worker: {e:?}"))?;
            let reply = on_reply.clone();
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let decoded = match event.data().as_string() {
                    Some(text) => {
                        WorkerReply::from_json(&text).unwrap_or_else(|e| WorkerReply::Failed {
                            message: e.to_string(),
                        })
                    }
                    None => WorkerReply::Failed {
                        message: "the worker sent a non-text message".into(),
                    },
                };
                reply(decoded);
            });
            let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
                on_reply(WorkerReply::Failed {
                    message: format!("the local store worker failed: {}", event.message()),
                });
            });
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            Ok(Self {
                worker,
                _on_message: on_message,
                _on_error: on_error,
            })
        }

        pub fn send(&self, request: &WorkerRequest) -> Result<(), String> {
            self.worker
                .post_message(&JsValue::from_str(&request.to_json()))
                .map_err(|e| format!("cannot reach the local store worker: {e:?}"))
        }
    }

    /// `<body data-ready="true">`: hydrated and the local store is open (CONTRACT.md).
    pub fn mark_body_ready() {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute("data-ready", "true");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_set_the_state() {
        let summary = StoreSummary {
            lists: 1,
            todos: 2,
            accepted: 0,
            pending: 3,
        };
        assert_eq!(
            StoreState::after(WorkerReply::Ready {
                summary,
                clock: "c".into()
            }),
            StoreState::Ready(summary)
        );
        assert_eq!(
            StoreState::after(WorkerReply::Summary { summary }),
            StoreState::Ready(summary)
        );
        assert_eq!(
            StoreState::after(WorkerReply::Failed {
                message: "disk full".into()
            }),
            StoreState::Failed("disk full".into())
        );
    }
}
