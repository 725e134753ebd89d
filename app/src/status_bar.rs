//! The status bar: the local store's state (with the OPFS probe) and the server check.

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
    let text = move || match state.get() {
        StoreState::Opening => "Local store: opening…".to_string(),
        StoreState::Ready { rows } => format!(
            "Local store: {rows} probe {}",
            if rows == 1 { "row" } else { "rows" }
        ),
        StoreState::Failed(message) => format!("Local store error: {message}"),
    };
    let rows = move || match state.get() {
        StoreState::Ready { rows } => rows.to_string(),
        _ => String::new(),
    };
    view! {
        <div class="statusbar-item">
            <span class="store-state" data-state=move || match state.get() {
                StoreState::Opening => "opening",
                StoreState::Ready { .. } => "ready",
                StoreState::Failed(_) => "failed",
            } data-rows=rows>{text}</span>
            <button
                type="button"
                class="probe-append"
                disabled=move || !matches!(state.get(), StoreState::Ready { .. })
                on:click=move |_| store.send(WorkerRequest::AppendProbeRow)
            >
                "Add probe row"
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
