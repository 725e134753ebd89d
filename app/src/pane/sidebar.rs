//! The sidebar: the workspace's lists, a new list, and each deleted list's Undo.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use tandem_protocol::data::Command;

use crate::local::{new_id, use_local};
use crate::model::use_model;

/// The sidebar: every list with its count of active to-dos, and "New list".
#[component]
pub(super) fn Sidebar() -> AnyView {
    let model = use_model();
    let local = use_local();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    // One list per Enter: a held key (repeats) or a second press before the reply makes none,
    // and Enter that ends an IME composition only ends it.
    let creating = StoredValue::new(false);
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() != "Enter" || ev.repeat() || ev.is_composing() || creating.get_value() {
            return;
        }
        let input: leptos::web_sys::HtmlInputElement = event_target(&ev);
        let name = input.value();
        if name.trim().is_empty() {
            return;
        }
        let list_id = new_id();
        let navigate = navigate.clone();
        let target = list_id.clone();
        creating.set_value(true);
        spawn_local(async move {
            let created = local.run(Command::CreateList { list_id, name }).await;
            creating.set_value(false);
            match created {
                Ok(_) => {
                    input.set_value("");
                    error.set(None);
                    navigate(&format!("/lists/{target}"), Default::default());
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    view! {
        <nav class="sidebar" aria-label="Lists">
            <crate::members::WorkspaceSwitcher/>
            <h2 class="sidebar-title">"Lists"</h2>
            <ul class="lists">
                <For
                    each=move || model.lists.get()
                    key=|l| (l.id.clone(), l.name.clone())
                    children=move |l| {
                        let id = l.id.clone();
                        let current = {
                            let id = id.clone();
                            Memo::new(move |_| model.list_id.get().as_deref() == Some(id.as_str()))
                        };
                        let active = {
                            let id = id.clone();
                            move || model.counts.with(|c| c.get(&id).map(|c| c.active))
                        };
                        view! {
                            <li class="list-item" class:current=current>
                                <a
                                    href=format!("/lists/{id}")
                                    aria-current=move || current.get().then_some("page")
                                >
                                    <span class="list-name">{l.name}</span>
                                    <span class="list-count">
                                        {move || active().filter(|n| *n > 0).map(|n| n.to_string())}
                                    </span>
                                </a>
                            </li>
                        }
                    }
                />
            </ul>
            <input
                class="new-list"
                aria-label="New list"
                placeholder="New list"
                on:keydown=on_keydown
            />
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
        </nav>
    }
    .into_any()
}
