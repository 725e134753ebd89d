//! The sync status line and the banners that say what the page cannot do.

use leptos::prelude::*;
use tandem_protocol::data::PageMessage;

use crate::local::use_local;
use crate::model::{use_model, Source};

/// The sync status (CONTRACT.md): `role="status"` with `data-sync-state` and `data-pending`,
/// "Sync now", when it last synced, and what failed.
#[component]
pub fn SyncStatusBar() -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let status = move || model.sync.get();
    let text = move || {
        let s = status();
        match s.state {
            tandem_protocol::data::SyncState::Connecting => "Connecting…",
            tandem_protocol::data::SyncState::Online => "Online",
            tandem_protocol::data::SyncState::Syncing => "Syncing…",
            tandem_protocol::data::SyncState::Offline => "Offline",
            tandem_protocol::data::SyncState::Error => "Sync error",
        }
    };
    let pending = move || {
        let n = status().pending;
        match n {
            0 => "All changes saved".to_string(),
            1 => "1 change not yet synced".to_string(),
            n => format!("{n} changes not yet synced"),
        }
    };
    let last = move || {
        status().last_synced_ms.map(|ms| {
            let clock = clock_text(ms);
            format!("Last synced {clock}")
        })
    };
    view! {
        <footer class="statusbar"
            // Pages that open no workspace (members, settings) have no sync to show.
            hidden=move || local.workspace.get().is_none()
        >
            <div
                class="sync-status"
                role="status"
                data-sync-state=move || status().state.as_str()
                data-pending=move || status().pending.to_string()
            >
                <span class="sync-dot" aria-hidden="true"></span>
                <span class="sync-state">{text}</span>
                <span class="sync-pending">{pending}</span>
                <span class="sync-last">{last}</span>
            </div>
            <button type="button" class="sync-now" on:click=move |_| local.send(PageMessage::SyncNow)>
                "Sync now"
            </button>
            <a class="inspect-link" href="/inspect">"Inspect"</a>
            {move || {
                status()
                    .error
                    .map(|e| view! { <p class="sync-error" role="alert">{format!("Sync failed: {e}")}</p> })
            }}
            {move || status().notice.map(|n| view! { <p class="sync-notice">{n}</p> })}
        </footer>
    }
}

/// `HH:MM` in the viewer's time zone.
fn clock_text(ms: u64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ms;
        String::new()
    }
}

/// Deletes this device's copy of the account's data (a damaged one: no worker holds it) and
/// loads the page again, which downloads the server's copy afresh.
fn start_afresh(account: crate::account::Account) {
    let Some(user) = account.user_id() else {
        return;
    };
    leptos::task::spawn_local(async move {
        crate::local::delete_local_copy(&user).await;
        #[cfg(feature = "hydrate")]
        let _ = window().location().reload();
    });
}

/// Downloads the files of this device's copy of the log (what the store cannot open), and
/// says how it went in `said`.
fn download_copy(account: crate::account::Account, said: RwSignal<Option<String>>) {
    let Some(user) = account.user_id() else {
        return;
    };
    leptos::task::spawn_local(async move {
        let text = match crate::local::export_local_copy(&user).await {
            Ok(names) if names.is_empty() => "This device holds no copy to download.".to_string(),
            Ok(names) => format!(
                "Downloaded {} (SQLite files, as this device holds them).",
                names.join(" and ")
            ),
            Err(e) => format!("The copy could not be downloaded: {e}"),
        };
        said.set(Some(text));
    });
}

/// Loads the page again (a new build is served).
fn reload_page() {
    #[cfg(feature = "hydrate")]
    let _ = window().location().reload();
}

/// What the page cannot do, said plainly: no storage, catching up.
#[component]
pub fn Banner() -> impl IntoView {
    let model = use_model();
    let account = crate::account::use_account();
    let local = use_local();
    let location = leptos_router::hooks::use_location();
    // What downloading the damaged copy did.
    let exported = RwSignal::new(None::<String>);
    let memory = move || {
        local.memory.get().then(|| {
            let pending = model.sync.with(|s| s.pending);
            view! {
                <div class="banner banner-warn" role="alert" data-storage="memory">
                    <strong>"This window cannot store data, so Tandem runs from memory. "</strong>
                    "Your changes are kept only until they are sent to the server; closing the tab before that loses them."
                    {(pending > 0).then(|| format!(" {pending} not sent yet."))}
                </div>
            }
        })
    };
    let source = move || {
        match model.source.get() {
        Source::Unavailable(reason) => Some(
            view! {
                <div class="banner banner-error" role="alert">
                    <strong>"Tandem cannot keep your to-dos in this window. "</strong>
                    {reason}
                    " Private windows often block storage: open Tandem in a normal window."
                </div>
            }
            .into_any(),
        ),
        Source::Damaged(reason) => Some(
            view! {
                <div class="banner banner-error" role="alert">
                    <strong>"Tandem cannot open this device's copy of your to-dos. "</strong>
                    {reason}
                    " What reached the server is safe there. Changes this device had not sent yet are only in this copy: download it first to keep its files. "
                    <button type="button" on:click=move |_| download_copy(account, exported)>
                        "Download this device's copy"
                    </button>
                    " "
                    <button type="button" on:click=move |_| start_afresh(account)>
                        "Start afresh on this device"
                    </button>
                    {move || exported.get().map(|said| view! { <p class="export-result" role="status">{said}</p> })}
                </div>
            }
            .into_any(),
        ),
        Source::OtherBuild { newer: true } => Some(
            view! {
                <div class="banner banner-warn" role="alert">
                    <strong>"A new version of Tandem is ready. "</strong>
                    <button type="button" on:click=|_| reload_page()>"Reload"</button>
                </div>
            }
            .into_any(),
        ),
        Source::OtherBuild { newer: false } => Some(
            view! {
                <div class="banner banner-info" role="status">
                    "Another tab runs an older version of Tandem; this tab goes on once that tab reloads or closes."
                </div>
            }
            .into_any(),
        ),
        Source::Local { behind: true } => Some(
            view! {
                <div class="banner banner-info" role="status">
                    "Showing what this device has; newer changes will download when the server can be reached."
                </div>
            }
            .into_any(),
        ),
        _ => model.progress.get().map(|(stored, head)| {
            let percent = (stored * 100).checked_div(head).unwrap_or(0);
            view! {
                <div class="banner banner-info">
                    <label>
                        "Downloading your to-dos… "
                        <progress max=head.to_string() value=stored.to_string()></progress>
                        {format!(" {percent}%")}
                    </label>
                </div>
            }
            .into_any()
        }),
    }
    };
    // The server stopped this workspace's sync (DESIGN.md rule 23): say why; the outbox stays.
    let denied = move || {
        let status = model.sync.get();
        status.denied.map(|denied| {
            let unsent = match status.pending {
                0 => String::new(),
                1 => " 1 change of yours is kept on this device.".to_string(),
                n => format!(" {n} changes of yours are kept on this device."),
            };
            match denied {
                tandem_protocol::data::Denied::Removed => view! {
                    <div class="banner banner-error" role="alert" data-denied="removed">
                        <strong>"You are no longer a member of this workspace. "</strong>
                        {format!("This device keeps what it has but no longer syncs it.{unsent}")}
                    </div>
                }
                .into_any(),
                tandem_protocol::data::Denied::ReadOnly => view! {
                    <div class="banner banner-error" role="alert" data-denied="read_only">
                        <strong>"You can only read this workspace now. "</strong>
                        {format!("Changes made here before cannot be sent; they stay on this device.{unsent}")}
                    </div>
                }
                .into_any(),
                tandem_protocol::data::Denied::SignedOut => {
                    let next = crate::account::encode(&location.pathname.get_untracked());
                    view! {
                        <div class="banner banner-error" role="alert" data-denied="signed_out">
                            <strong>"Your session has ended. "</strong>
                            {format!("Nothing is lost: sign in again to sync.{unsent} ")}
                            <a href=format!("/sign-in?next={next}")>"Sign in again"</a>
                        </div>
                    }
                    .into_any()
                }
            }
        })
    };
    view! {
        {memory}
        {source}
        {denied}
    }
}
