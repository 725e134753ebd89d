//! `/trash`: deleted lists and to-dos, and to-dos hidden because their list was deleted (also
//! on another device), newest first, each with a way back. Read from the device's local store
//! (the Trash is the device's view of the log); restoring records a restore like any edit
//! (DESIGN.md rule 19), so it syncs, and a delete it did not see still wins.

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::{Command, TrashRow};

use crate::conflicts::date_time_text;
use crate::local::{mark_ready, use_local};
use crate::model::use_model;

#[component]
pub fn TrashRoute() -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let items = RwSignal::new(None::<(Vec<TrashRow>, bool)>);
    let error = RwSignal::new(None::<String>);
    local.open_without_server_view();
    // The lists once (for "Restore to …"; change sets keep them current from then on).
    Effect::new(move |_| {
        if !local.ready.get() {
            return;
        }
        spawn_local(async move {
            match local.lists().await {
                Ok(lists) if model.lists.get_untracked() != lists => model.lists.set(lists),
                Ok(_) => {}
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    });
    // The Trash: read again whenever the store is ready or anything changed.
    Effect::new(move |_| {
        if !local.ready.get() {
            return;
        }
        model.revision.track();
        spawn_local(async move {
            match local.trash().await {
                Ok(trash) => {
                    items.set(Some(trash));
                    mark_ready();
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    });
    // The list a hidden to-do goes back to: the first live one.
    let first_list = move || model.lists.with(|l| l.first().cloned());
    let restore = move |command: Command| {
        spawn_local(async move {
            error.set(local.run(command).await.err().map(|e| e.to_string()));
        });
    };
    let row = move |item: TrashRow| {
        let what = match (item.kind.as_str(), &item.list_name) {
            ("list", _) => "List".to_string(),
            (_, Some(list)) if item.list_deleted && !item.deleted => {
                format!("To-do in the deleted list “{list}”")
            }
            (_, Some(list)) => format!("To-do in “{list}”"),
            _ => "To-do".to_string(),
        };
        let mine = local.device_id.get_untracked().as_deref() == Some(item.device_id.as_str());
        let by = match (&item.device_name, mine) {
            (_, true) => "on this device".to_string(),
            (Some(name), false) => format!("on {name}"),
            (None, false) => "on another device".to_string(),
        };
        let when = date_time_text(item.deleted_at);
        let action = if item.kind == "list" {
            let id = item.id.clone();
            view! {
                <button type="button" class="restore" on:click=move |_| restore(Command::RestoreList { list_id: id.clone() })>
                    "Restore"
                </button>
            }
            .into_any()
        } else if item.deleted {
            let id = item.id.clone();
            view! {
                <button type="button" class="restore" on:click=move |_| restore(Command::RestoreTodo { todo_id: id.clone() })>
                    "Restore"
                </button>
            }
            .into_any()
        } else {
            // Hidden by its deleted list: it goes to a live list (or comes back with its list).
            let id = item.id.clone();
            (move || match first_list() {
                Some(list) => {
                    let (todo_id, list_id) = (id.clone(), list.id.clone());
                    view! {
                        <button
                            type="button"
                            class="restore"
                            on:click=move |_| {
                                restore(Command::MoveToList {
                                    todo_id: todo_id.clone(),
                                    list_id: list_id.clone(),
                                })
                            }
                        >
                            {format!("Restore to {}", list.name)}
                        </button>
                    }
                    .into_any()
                }
                None => view! { <span class="trash-hint">"Restore its list to get it back"</span> }
                    .into_any(),
            })
            .into_any()
        };
        view! {
            <li class="trash-item" data-kind=item.kind.clone() data-id=item.id.clone()>
                <div class="trash-text">
                    <span class="trash-title">{item.title.clone()}</span>
                    <span class="trash-meta">{format!("{what} · deleted {when} {by}")}</span>
                </div>
                {action}
            </li>
        }
    };
    view! {
        <section class="trash" aria-labelledby="trash-title">
            <p class="back"><a href="/">"← Back to your lists"</a></p>
            <h1 id="trash-title" class="list-title">"Trash"</h1>
            <p class="trash-help">
                "Deleted lists and to-dos stay here. Restoring one brings it back on every device."
            </p>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {move || match items.get() {
                None => view! { <p class="loading">"Loading the Trash…"</p> }.into_any(),
                Some((rows, _)) if rows.is_empty() => {
                    view! { <p class="trash-empty">"The Trash is empty."</p> }.into_any()
                }
                Some((rows, more)) => {
                    view! {
                        <ul class="trash-list">{rows.into_iter().map(row).collect_view()}</ul>
                        {more.then(|| view! { <p class="trash-more">"Older items are not shown."</p> })}
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
