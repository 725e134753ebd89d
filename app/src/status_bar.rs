//! The status bar: the local store's state (with a button adding a to-do through it) and the
//! server check.

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::worker::WorkerRequest;

use crate::local_store::{use_local_store, StoreState};
use crate::server_status::{clock_offset_ms, now_ms, server_status};

#[component]
pub fn StatusBar() -> impl IntoView {
    view! {
        <footer class="statusbar">
            <LocalStoreStatus/>
            <ServerCheck/>
        </footer>
    }
}

#[component]
fn LocalStoreStatus() -> impl IntoView {
    let store = use_local_store();
    let state = store.state();
    let clock = store.clock();
    let text = move || match state.get() {
        StoreState::Opening => "Local store: opening…".to_string(),
        StoreState::Ready(s) => format!(
            "Local store: {} to-do{}, {} event{} not yet synced",
            s.todos,
            if s.todos == 1 { "" } else { "s" },
            s.pending,
            if s.pending == 1 { "" } else { "s" },
        ),
        StoreState::Failed(message) => format!("Local store error: {message}"),
    };
    let summary = move || match state.get() {
        StoreState::Ready(s) => Some(s),
        _ => None,
    };
    view! {
        <div class="statusbar-item">
            <span
                class="store-state"
                data-state=move || match state.get() {
                    StoreState::Opening => "opening",
                    StoreState::Ready(_) => "ready",
                    StoreState::Failed(_) => "failed",
                }
                data-todos=move || summary().map(|s| s.todos.to_string())
                data-events=move || summary().map(|s| (s.pending + s.accepted).to_string())
                data-clock=move || clock.get()
            >
                {text}
            </span>
            <button
                type="button"
                class="add-sample-todo"
                disabled=move || summary().is_none()
                on:click=move |_| {
                    let n = summary().map_or(0, |s| s.todos) + 1;
                    store.send(WorkerRequest::AddTodo { title: format!("To-do #{n}") });
                }
            >
                "Add a to-do"
            </button>
        </div>
    }
}

#[component]
fn ServerCheck() -> impl IntoView {
    let report = RwSignal::new(None::<String>);
    let check = move |_| {
        report.set(Some("Checking…".into()));
        spawn_local(async move {
            let sent = now_ms();
            let text = match server_status().await {
                Ok(status) => format!(
                    "Server {} · clock offset {:+} ms",
                    status.version,
                    clock_offset_ms(sent, now_ms(), status.server_time_ms)
                ),
                Err(e) => format!("Server unreachable: {e}"),
            };
            report.set(Some(text));
        });
    };
    view! {
        <div class="statusbar-item">
            <button type="button" class="server-check" on:click=check>"Check server"</button>
            <output class="server-report">{move || report.get()}</output>
        </div>
    }
}
