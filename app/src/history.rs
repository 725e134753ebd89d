//! History and time travel: an item's "History" lists every event of it — what changed, old →
//! new, on which device, when (wall clock and HLC), pending or accepted — newest first; "View
//! the list as of this" shows the whole list as it was at that event's moment, replayed from
//! the log by the worker, read-only and clearly marked, left with one action ("Back to now").

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::{FieldChange, HistoryEntry, TodoRow};

use crate::conflicts::date_time_text;
use crate::dialog::Modal;
use crate::local::use_local;
use crate::model::{use_model, Model};

/// The "History" button of a list or todo, and its dialog.
#[component]
pub fn HistoryButton(item_id: String, #[prop(into)] label: Signal<String>) -> impl IntoView {
    let open = RwSignal::new(false);
    let button_ref = NodeRef::<leptos::html::Button>::new();
    let close = Callback::new(move |()| {
        open.set(false);
        if let Some(button) = button_ref.get_untracked() {
            let _ = button.focus();
        }
    });
    view! {
        <button
            type="button"
            class="history-button"
            node_ref=button_ref
            aria-haspopup="dialog"
            on:click=move |_| open.set(true)
        >
            "History"
        </button>
        <Show when=move || open.get()>
            <HistoryDialog item_id=item_id.clone() label close/>
        </Show>
    }
}

#[component]
fn HistoryDialog(item_id: String, label: Signal<String>, close: Callback<()>) -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let entries = RwSignal::new(None::<Vec<HistoryEntry>>);
    let error = RwSignal::new(None::<String>);
    {
        let item_id = item_id.clone();
        // Read again after every change set: a sync turns "pending" into "synced".
        Effect::new(move |_| {
            model.revision.track();
            let id = item_id.clone();
            spawn_local(async move {
                match local.history(id).await {
                    Ok(e) => entries.set(Some(e)),
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        });
    }
    let this_device = local.device_id;
    let entry_view = move |e: HistoryEntry| {
        let lines: Vec<String> = e
            .changes
            .iter()
            .filter_map(|c| change_text(c, &e.event_type, model))
            .collect();
        let device = match (
            &e.device_name,
            this_device.get_untracked().as_deref() == Some(e.device_id.as_str()),
        ) {
            (Some(name), true) => format!("{name} (this device)"),
            (Some(name), false) => name.clone(),
            (None, true) => "This device".into(),
            (None, false) => "Another device".into(),
        };
        // The person beside the device (DESIGN.md rule 23: events record their account).
        let who = match &e.person {
            Some(person) => format!("{person} · {device}"),
            None => device,
        };
        let when = date_time_text(e.at);
        // The stamp's physical ms and counter (the device part is in the name).
        let hlc: String = e.hlc.chars().take(26).collect();
        let at_ms = e.hlc_ms;
        view! {
            <li class="history-entry" data-event-type=e.event_type.clone()>
                <div class="history-what">
                    {lines.into_iter().map(|l| view! { <span class="history-change">{l}</span> }).collect_view()}
                </div>
                <div class="history-meta">
                    <span>{who}</span>
                    <span>{when}</span>
                    <span class="history-state" class:pending=e.pending>
                        {if e.pending { "Pending" } else { "Synced" }}
                    </span>
                    <code class="history-hlc" title="Hybrid logical clock: ms and counter">{hlc}</code>
                </div>
                <button
                    type="button"
                    class="view-as-of"
                    on:click=move |_| {
                        model.as_of.set(Some(at_ms));
                        close.run(());
                    }
                >
                    "View the list as of this"
                </button>
            </li>
        }
    };
    view! {
        <Modal
            id=format!("history-title-{item_id}")
            title=Signal::derive(move || format!("History of “{}”", label.get()))
            class="history-dialog"
            close
        >
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {move || match entries.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(list) => {
                    view! { <ol class="history-list">{list.into_iter().map(entry_view).collect_view()}</ol> }
                        .into_any()
                }
            }}
        </Modal>
    }
}

/// A JSON value as the user reads it.
fn value_text(field: &str, json: &str, model: Model) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
    match (field, &v) {
        ("due_date", serde_json::Value::Null) => "none".into(),
        ("notes", serde_json::Value::String(s)) if s.is_empty() => "none".into(),
        ("list", serde_json::Value::String(id)) => model.lists.with_untracked(|lists| {
            lists
                .iter()
                .find(|l| &l.id == id)
                .map(|l| format!("“{}”", l.name))
                .unwrap_or_else(|| "a deleted list".into())
        }),
        (_, serde_json::Value::String(s)) => {
            let short: String = s.chars().take(80).collect();
            let more = if s.chars().count() > 80 { "…" } else { "" };
            format!("“{short}{more}”")
        }
        _ => v.to_string(),
    }
}

/// One line of what an event changed ("Title: “milk” → “oat milk”"), or nothing for what
/// the user never set by itself (a creation's position).
fn change_text(c: &FieldChange, event_type: &str, model: Model) -> Option<String> {
    let new = value_text(&c.field, &c.new, model);
    let old = c
        .old
        .iter()
        .map(|o| value_text(&c.field, o, model))
        .collect::<Vec<_>>()
        .join(" and ");
    let created = event_type.ends_with("Created");
    Some(match c.field.as_str() {
        "deleted" if c.new == "true" => "Deleted".into(),
        "deleted" => "Restored".into(),
        "completed" if c.new == "true" => "Marked done".into(),
        "completed" => "Marked not done".into(),
        "position" if created => return None,
        "position" => "Reordered".into(),
        "title" | "name" if created => format!("Created {new}"),
        "list" if created => format!("In the list {new}"),
        "list" if old.is_empty() => format!("Moved to the list {new}"),
        "list" => format!("Moved from the list {old} to {new}"),
        field => {
            let name = match field {
                "title" => "Title",
                "notes" => "Notes",
                "due_date" => "Due date",
                "name" => "Name",
                _ => "Value",
            };
            if old.is_empty() {
                format!("{name}: {new}")
            } else {
                format!("{name}: {old} → {new}")
            }
        }
    })
}

/// The current list as it was at `model.as_of`, read-only, with one way back.
#[component]
pub fn AsOfView() -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let shown = RwSignal::new(None::<Result<(Option<String>, bool, Vec<TodoRow>), String>>);
    Effect::new(move |_| {
        let (Some(at_ms), Some(list_id)) = (model.as_of.get(), model.list_id.get()) else {
            return;
        };
        shown.set(None);
        spawn_local(async move {
            shown.set(Some(
                local
                    .as_of(list_id, at_ms)
                    .await
                    .map(|a| (a.list.map(|l| l.name), a.deleted, a.todos))
                    .map_err(|e| e.to_string()),
            ));
        });
    });
    let back_ref = NodeRef::<leptos::html::Button>::new();
    Effect::new(move |_| {
        if let Some(back) = back_ref.get() {
            let _ = back.focus();
        }
    });
    let when = move || {
        model
            .as_of
            .get()
            .map(|ms| date_time_text(ms as i64))
            .unwrap_or_default()
    };
    view! {
        <section class="as-of" aria-label="The list as it was">
            <div class="as-of-banner" role="status">
                <span>
                    <strong>"Read-only: "</strong>
                    {move || format!("the list as it was on {}", when())}
                </span>
                <button type="button" class="back-to-now" node_ref=back_ref on:click=move |_| model.as_of.set(None)>
                    "Back to now"
                </button>
            </div>
            {move || match shown.get() {
                None => view! { <p class="loading">"Replaying the log…"</p> }.into_any(),
                Some(Err(reason)) => view! { <p class="form-error" role="alert">{reason}</p> }.into_any(),
                Some(Ok((None, ..))) => view! { <p class="as-of-empty">"The list did not exist yet."</p> }.into_any(),
                Some(Ok((Some(name), deleted, todos))) => {
                    let note = if deleted { format!("“{name}” was deleted then.") } else { format!("“{name}” then:") };
                    let empty = todos.is_empty();
                    view! {
                        <p class="as-of-name">{note}</p>
                        <ul class="as-of-list">
                            {todos
                                .into_iter()
                                .map(|t| {
                                    view! {
                                        <li class="as-of-item" class:completed=t.completed>
                                            <span class="as-of-check" aria-label=if t.completed { "Done" } else { "Not done" }>
                                                {if t.completed { "✓" } else { "○" }}
                                            </span>
                                            <span class="as-of-title">{t.title}</span>
                                            {t.due_date.map(|d| view! { <time class="due" datetime=d.clone()>{d.clone()}</time> })}
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                        {empty.then(|| view! { <p class="as-of-empty">"No to-dos then."</p> })}
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
