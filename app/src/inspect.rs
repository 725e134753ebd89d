//! `/inspect`: a look inside the device's local databases (the seed notes' "inspect, query and
//! manage the local databases"): the store's state (device, clock, cursor, counts), the event
//! log, outbox and set-aside events (filtered by type, item and device, newest first, paged),
//! a read-only SQL console over events.db and views.db run by the worker, "Rebuild views" with
//! its progress, and an export of the local log as JSON lines.

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::{Database, EventTable, InspectedEvent, QueryPage, StoreState};

use crate::local::{mark_ready, use_local, InspectEvents};
use crate::model::use_model;

/// Events per page of the event list.
const EVENTS_PAGE: u64 = 25;

#[component]
pub fn InspectRoute() -> AnyView {
    let local = use_local();
    local.open_without_server_view();
    view! {
        <section class="inspect" aria-labelledby="inspect-title">
            <p class="back"><a href="/">"← Back to your lists"</a></p>
            <h1 id="inspect-title" class="list-title">"Inspector"</h1>
            <p class="inspect-help">
                "This device's own databases, as its worker holds them. Nothing here changes your data, except Rebuild views, which recomputes them from the log."
            </p>
            <State/>
            <Events/>
            <Console/>
            <Maintenance/>
        </section>
    }
    .into_any()
}

#[component]
fn State() -> AnyView {
    let model = use_model();
    let local = use_local();
    let state = RwSignal::new(None::<StoreState>);
    Effect::new(move |_| {
        if !local.ready.get() {
            return;
        }
        model.revision.track();
        model.sync.track();
        spawn_local(async move {
            // A failure leaves the section empty; the banner says what is wrong with the store.
            if let Ok(s) = local.inspect_state().await {
                state.set(Some(s));
                mark_ready();
            }
        });
    });
    let row = |name: &'static str, value: String| {
        view! {
            <div class="kv">
                <dt>{name}</dt>
                <dd><code>{value}</code></dd>
            </div>
        }
    };
    view! {
        <section class="inspect-part" aria-labelledby="state-title">
            <h2 id="state-title">"State"</h2>
            {move || {
                state
                    .get()
                    .map(|s| {
                        let sync = model.sync.get();
                        view! {
                            <dl class="state">
                                {row("Device", s.device_id)}
                                {row("Clock (HLC now)", s.clock)}
                                {row("Clock offset", format!("{} ms", s.clock_offset_ms))}
                                {row("Workspace", s.workspace_id)}
                                {row("Server log", s.server_log_id.unwrap_or_else(|| "not synced yet".into()))}
                                {row("Sync", format!("{} ({} pending)", sync.state.as_str(), sync.pending))}
                                {row("Cursor (seq stored)", s.cursor.to_string())}
                                {row("Views' checkpoint", s.checkpoint.to_string())}
                                {row("Events in the log", s.logged.to_string())}
                                {row("Events in the outbox", s.pending.to_string())}
                                {row("Events set aside", s.set_aside.to_string())}
                                {row("Projection version", s.projection_version.to_string())}
                                {row("Owner epoch (tabs)", s.owner_epoch.to_string())}
                                {row("Undo steps", s.undo_steps.to_string())}
                            </dl>
                        }
                    })
            }}
        </section>
    }
    .into_any()
}

#[component]
fn Events() -> AnyView {
    let model = use_model();
    let local = use_local();
    let table = RwSignal::new(EventTable::Log);
    let event_type = RwSignal::new(String::new());
    let item = RwSignal::new(String::new());
    let device = RwSignal::new(String::new());
    let offset = RwSignal::new(0u64);
    let page = RwSignal::new(None::<(Vec<InspectedEvent>, bool)>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if !local.ready.get() {
            return;
        }
        model.revision.track();
        let request = InspectEvents {
            table: table.get(),
            event_type: Some(event_type.get()),
            item: Some(item.get()),
            device: Some(device.get()),
            offset: offset.get(),
            limit: EVENTS_PAGE,
        };
        spawn_local(async move {
            match local.inspect_events(request).await {
                Ok(events) => {
                    error.set(None);
                    page.set(Some(events));
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    });
    let filter = move |signal: RwSignal<String>, label: &'static str, placeholder: &'static str| {
        view! {
            <label class="filter">
                <span>{label}</span>
                <input
                    aria-label=label
                    placeholder=placeholder
                    prop:value=move || signal.get()
                    on:change=move |ev| {
                        signal.set(event_target_value(&ev));
                        offset.set(0);
                    }
                />
            </label>
        }
    };
    let event_row = |e: InspectedEvent| {
        view! {
            <tr>
                <td>{e.seq.map(|s| s.to_string()).unwrap_or_else(|| "–".into())}</td>
                <td>{e.event_type}</td>
                <td><code>{e.aggregate_id}</code></td>
                <td><code>{e.hlc}</code></td>
                <td><code>{e.device_id}</code></td>
                <td>{e.version.to_string()}</td>
                <td><code class="data">{e.data}</code>{e.reason.map(|r| view! { <p class="reason">{r}</p> })}</td>
            </tr>
        }
    };
    view! {
        <section class="inspect-part" aria-labelledby="events-title">
            <h2 id="events-title">"Events"</h2>
            <div class="filters-row">
                <label class="filter">
                    <span>"Table"</span>
                    <select
                        aria-label="Table"
                        on:change=move |ev| {
                            table.set(match event_target_value(&ev).as_str() {
                                "outbox" => EventTable::Outbox,
                                "set_aside" => EventTable::SetAside,
                                _ => EventTable::Log,
                            });
                            offset.set(0);
                        }
                    >
                        <option value="log">"Log (accepted)"</option>
                        <option value="outbox">"Outbox (pending)"</option>
                        <option value="set_aside">"Set aside (refused)"</option>
                    </select>
                </label>
                {filter(event_type, "Type", "TodoCreated")}
                {filter(item, "Item", "aggregate id")}
                {filter(device, "Device", "device id")}
            </div>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <div class="table-wrap">
                <table class="events-table">
                    <thead>
                        <tr>
                            <th scope="col">"Seq"</th>
                            <th scope="col">"Type"</th>
                            <th scope="col">"Item"</th>
                            <th scope="col">"HLC"</th>
                            <th scope="col">"Device"</th>
                            <th scope="col">"Version"</th>
                            <th scope="col">"Data"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || page.get().map(|(events, _)| events.into_iter().map(event_row).collect_view())}
                    </tbody>
                </table>
            </div>
            <div class="pager">
                <button
                    type="button"
                    disabled=move || offset.get() == 0
                    on:click=move |_| offset.update(|o| *o = o.saturating_sub(EVENTS_PAGE))
                >
                    "Newer"
                </button>
                <span class="pager-at">
                    {move || {
                        let n = page.with(|p| p.as_ref().map_or(0, |(e, _)| e.len() as u64));
                        if n == 0 { "No events".to_string() } else { format!("{}–{}", offset.get() + 1, offset.get() + n) }
                    }}
                </span>
                <button
                    type="button"
                    disabled=move || !page.with(|p| p.as_ref().is_some_and(|(_, more)| *more))
                    on:click=move |_| offset.update(|o| *o += EVENTS_PAGE)
                >
                    "Older"
                </button>
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn Console() -> AnyView {
    let local = use_local();
    let database = RwSignal::new(Database::Views);
    let sql =
        RwSignal::new("SELECT title, completed FROM todos WHERE NOT deleted LIMIT 20".to_string());
    let offset = RwSignal::new(0u64);
    let result = RwSignal::new(None::<Result<QueryPage, String>>);
    let running = RwSignal::new(false);
    let run = move |at: u64| {
        offset.set(at);
        running.set(true);
        let (db, text) = (database.get_untracked(), sql.get_untracked());
        spawn_local(async move {
            let page = local.query(db, text, at).await;
            running.set(false);
            result.set(Some(page.map_err(|e| e.to_string())));
        });
    };
    view! {
        <section class="inspect-part" aria-labelledby="console-title">
            <h2 id="console-title">"SQL console"</h2>
            <p class="inspect-help">"One read-only statement; statements that write are refused, and one that runs too long is stopped."</p>
            <div class="filters-row">
                <label class="filter">
                    <span>"Database"</span>
                    <select
                        aria-label="Database"
                        on:change=move |ev| {
                            database.set(if event_target_value(&ev) == "events" { Database::Events } else { Database::Views });
                        }
                    >
                        <option value="views">"views.db"</option>
                        <option value="events">"events.db"</option>
                    </select>
                </label>
            </div>
            <textarea
                class="sql"
                rows="3"
                aria-label="SQL"
                spellcheck="false"
                prop:value=move || sql.get()
                on:input=move |ev| sql.set(event_target_value(&ev))
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        run(0);
                    }
                }
            ></textarea>
            <div class="pager">
                <button type="button" class="run" disabled=move || running.get() on:click=move |_| run(0)>
                    "Run"
                </button>
                <span class="inspect-help">"Ctrl+Enter runs it"</span>
            </div>
            {move || match result.get() {
                None => ().into_any(),
                Some(Err(reason)) => view! { <p class="form-error" role="alert">{reason}</p> }.into_any(),
                Some(Ok(page)) => {
                    let more = page.more;
                    let shown = page.rows.len() as u64;
                    view! {
                        <div class="table-wrap">
                            <table class="query-result">
                                <thead>
                                    <tr>{page.columns.into_iter().map(|c| view! { <th scope="col">{c}</th> }).collect_view()}</tr>
                                </thead>
                                <tbody>
                                    {page
                                        .rows
                                        .into_iter()
                                        .map(|r| view! { <tr>{r.into_iter().map(|v| view! { <td>{v}</td> }).collect_view()}</tr> })
                                        .collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <div class="pager">
                            <button type="button" disabled=move || offset.get() == 0 on:click=move |_| run(offset.get_untracked().saturating_sub(100))>
                                "Previous rows"
                            </button>
                            <span class="pager-at">
                                {move || if shown == 0 { "No rows".to_string() } else { format!("Rows {}–{}", offset.get() + 1, offset.get() + shown) }}
                            </span>
                            <button type="button" disabled=!more on:click=move |_| run(offset.get_untracked() + 100)>
                                "Next rows"
                            </button>
                        </div>
                    }
                        .into_any()
                }
            }}
        </section>
    }
    .into_any()
}

#[component]
fn Maintenance() -> AnyView {
    let model = use_model();
    let local = use_local();
    let message = RwSignal::new(None::<(bool, String)>);
    let busy = RwSignal::new(false);
    let download = RwSignal::new(None::<(String, u64)>);
    on_cleanup(move || {
        if let Some(Some((url, _))) = download.try_get_untracked() {
            revoke_object_url(&url);
        }
    });
    let rebuild = move |_| {
        busy.set(true);
        message.set(None);
        spawn_local(async move {
            let rebuilt = local.rebuild_views().await;
            busy.set(false);
            model.rebuilding.set(None);
            message.set(Some(match rebuilt {
                Ok(events) => (
                    false,
                    format!("The views were rebuilt from {events} events."),
                ),
                Err(e) => (true, e.to_string()),
            }));
        });
    };
    let export = move |_| {
        spawn_local(async move {
            match local.export().await {
                Ok((lines, events)) => {
                    let url = object_url(&lines);
                    // The link offered before goes: its blob with it.
                    if let Some(Some((old, _))) = download.try_get_untracked() {
                        revoke_object_url(&old);
                    }
                    // The view went meanwhile: nobody will offer it.
                    if let Some(Some((url, _))) = download.try_set(Some((url, events))) {
                        revoke_object_url(&url);
                    }
                }
                Err(e) => {
                    message.try_set(Some((true, e.to_string())));
                }
            }
        });
    };
    view! {
        <section class="inspect-part" aria-labelledby="maintenance-title">
            <h2 id="maintenance-title">"Maintenance"</h2>
            <div class="pager">
                <button type="button" disabled=move || busy.get() on:click=rebuild>"Rebuild views"</button>
                <button type="button" on:click=export>"Export the log"</button>
            </div>
            {move || {
                model
                    .rebuilding
                    .get()
                    .map(|(done, total)| {
                        view! {
                            <progress class="rebuild-progress" aria-label="Rebuilding the views" max=total.to_string() value=done.to_string()></progress>
                        }
                    })
            }}
            {move || message.get().map(|(failed, text)| {
                if failed {
                    view! { <p class="form-error" role="alert">{text}</p> }.into_any()
                } else {
                    view! { <p class="inspect-done" role="status">{text}</p> }.into_any()
                }
            })}
            {move || download.get().map(|(url, events)| view! {
                <p>
                    <a class="export-link" href=url download="tandem-events.jsonl">
                        {format!("Download tandem-events.jsonl ({events} events)")}
                    </a>
                </p>
            })}
        </section>
    }
    .into_any()
}

/// Frees a Blob URL made by [`object_url`] (the blob stays in memory until then).
pub(crate) fn revoke_object_url(url: &str) {
    #[cfg(feature = "hydrate")]
    if !url.is_empty() {
        let _ = web_sys::Url::revoke_object_url(url);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = url;
}

/// A download link's address for `text` (a Blob URL in the browser). The caller frees it with
/// [`revoke_object_url`] when the link goes or offers another.
pub(crate) fn object_url(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
        let options = web_sys::BlobPropertyBag::new();
        options.set_type("application/x-ndjson");
        web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
            .and_then(|blob| web_sys::Url::create_object_url_with_blob(&blob))
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        String::new()
    }
}
