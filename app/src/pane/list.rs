//! The TodoMVC pane of the current list and its new-todo box.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use tandem_protocol::data::{Command, Filter};

use crate::conflicts::ConflictBadge;
use crate::history::{AsOfView, HistoryButton};
use crate::local::{new_id, use_local, AskError, Local};
use crate::model::use_model;
use crate::quick_add::{self, Day};

use super::item::Item;
use super::{report, run_reporting};

/// How long "Undo" stays beside a deleted list (the Trash keeps it after that).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const UNDO_MS: u64 = 5_000;

/// The TodoMVC pane of the current list.
#[component]
pub(super) fn TodoApp(filter: Memo<Filter>) -> AnyView {
    let account = crate::account::use_account();
    let model = use_model();
    let local = use_local();
    let error = RwSignal::new(None::<String>);
    let list_name = move || {
        let id = model.list_id.get();
        model.lists.with(|lists| {
            lists
                .iter()
                .find(|l| Some(&l.id) == id.as_ref())
                .map(|l| l.name.clone())
        })
    };
    // Rename in place (double-click the name or "Rename list"); Enter or blur saves, Escape
    // cancels.
    let renaming = RwSignal::new(false);
    let rename_ref = NodeRef::<leptos::html::Input>::new();
    let rename_shown = StoredValue::new((String::new(), String::new()));
    // What was typed, when the rename failed: the box opens again with it (never lost).
    let rename_draft = StoredValue::new(None::<String>);
    let start_rename = move || {
        let id = model.list_id.get_untracked();
        let shown = model.lists.with_untracked(|lists| {
            lists
                .iter()
                .find(|l| Some(&l.id) == id.as_ref())
                .map(|l| (l.name.clone(), l.name_hlc.clone()))
        });
        if let Some(shown) = shown {
            rename_shown.set_value(shown);
            renaming.set(true);
        }
    };
    Effect::new(move |_| {
        if renaming.get() {
            if let Some(input) = rename_ref.get() {
                let _ = input.focus();
                input.select();
            }
        }
    });
    let rename = move |name: String| {
        if !renaming.get_untracked() {
            return;
        }
        renaming.set(false);
        let (before, stamp) = rename_shown.get_value();
        let Some(list_id) = model.list_id.get_untracked() else {
            return;
        };
        if name.trim() == before || name.trim().is_empty() {
            return;
        }
        let renamed = list_id.clone();
        let command = Command::RenameList {
            list_id,
            name: name.clone(),
            shown: Some(stamp),
        };
        spawn_local(async move {
            let renaming_done = local.run(command).await;
            // Only where it was typed: another list may be open by now.
            if renaming_done.is_err()
                && !renaming.get_untracked()
                && model.list_id.get_untracked().as_ref() == Some(&renamed)
            {
                rename_draft.set_value(Some(name));
                renaming.set(true);
            }
            report(error, &renaming_done);
        });
    };
    let on_rename_keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Enter" if ev.is_composing() => {}
        "Enter" => rename(event_target_value(&ev)),
        "Escape" => renaming.set(false),
        _ => {}
    };
    // A deletion is recorded at once (durable like any command: closing the tab keeps it,
    // several in a row each happen); "Undo" beside it for a few seconds restores the list.
    // Only a page still on the deleted list moves to the first one.
    let deleted = model.deleted_lists;
    let navigate = StoredValue::new(use_navigate());
    let delete_list = move || {
        let Some(list_id) = model.list_id.get_untracked() else {
            return;
        };
        let name = list_name().unwrap_or_default();
        let command = Command::DeleteList {
            list_id: list_id.clone(),
        };
        spawn_local(async move {
            let deleting = local.run(command).await;
            if deleting.is_ok() {
                if model.list_id.get_untracked().as_ref() == Some(&list_id) {
                    navigate.with_value(|go| go("/", Default::default()));
                }
                // Each offer goes with its own timer (the list may be deleted again after
                // an undo: that offer has its own few seconds).
                static OFFERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let offer = OFFERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                deleted.update(|d| d.push((list_id.clone(), name, offer)));
                #[cfg(feature = "hydrate")]
                set_timeout(
                    move || {
                        let _ = deleted.try_update(|d| d.retain(|(_, _, o)| *o != offer));
                    },
                    std::time::Duration::from_millis(UNDO_MS),
                );
            }
            report(error, &deleting);
        });
    };
    let undo_delete = move |list_id: String| {
        deleted.update(|d| d.retain(|(id, _, _)| *id != list_id));
        let command = Command::RestoreList {
            list_id: list_id.clone(),
        };
        spawn_local(async move {
            let restored = local.run(command).await;
            if restored.is_ok() {
                navigate.with_value(|go| go(&format!("/lists/{list_id}"), Default::default()));
            }
            report(error, &restored);
        });
    };
    let counts = move || model.current_counts();
    let total = move || {
        let c = counts();
        c.active + c.completed
    };
    let base = move || {
        model
            .list_id
            .get()
            .map(|id| format!("/lists/{id}"))
            .unwrap_or_else(|| "/".into())
    };
    // Only the All filter leaves row signals unread: a toggle there touches one row.
    let visible = Memo::new(move |_| {
        let order = model.order.get();
        match filter.get() {
            Filter::All => order,
            f => order
                .into_iter()
                .filter(|id| {
                    model
                        .row(id)
                        .is_some_and(|r| r.with(|r| f.passes(r.completed)))
                })
                .collect(),
        }
    });
    let toggle_all = move |_| {
        let Some(list_id) = model.list_id.get_untracked() else {
            return;
        };
        let completed = model.current_counts().active > 0;
        run_reporting(local, error, Command::ToggleAll { list_id, completed });
    };
    let clear_completed = move |_| {
        let Some(list_id) = model.list_id.get_untracked() else {
            return;
        };
        run_reporting(local, error, Command::ClearCompleted { list_id });
    };
    let filter_link = move |f: Filter, label: &'static str| {
        let href = move || {
            let base = base();
            match f {
                Filter::All => base,
                f => format!("{base}/{}", f.segment()),
            }
        };
        view! {
            <li>
                <a href=href class:selected=move || filter.get() == f>{label}</a>
            </li>
        }
    };
    // Only when it changes (see `Item`): a change set never resets the box just clicked.
    let all_done = Memo::new(move |_| counts().active == 0);
    view! {
        <section
            class="todoapp"
            class:read-only=move || !account.can_edit()
            aria-label="To-dos"
        >
            <header class="header">
                <div class="title-row">
                    <Show
                        when=move || renaming.get()
                        fallback=move || {
                            view! {
                                <h1 class="list-title" on:dblclick=move |_| start_rename()>
                                    {move || {
                                        list_name()
                                            .unwrap_or_else(|| {
                                                if model.known.get() || model.list_id.get().is_none() {
                                                    "No lists yet".to_string()
                                                } else {
                                                    "This list is not here yet".to_string()
                                                }
                                            })
                                    }}
                                </h1>
                            }
                        }
                    >
                        <input
                            class="rename-list"
                            aria-label="List name"
                            node_ref=rename_ref
                            // The name when renaming began, read once: a change arriving
                            // meanwhile (a pulled list) never resets what is being typed.
                            prop:value=rename_draft
                                .try_update_value(Option::take)
                                .flatten()
                                .unwrap_or_else(|| rename_shown.get_value().0)
                            on:keydown=on_rename_keydown
                            on:blur=move |ev| rename(event_target_value(&ev))
                        />
                    </Show>
                    <Show when=move || list_name().is_some()>
                        <div class="list-actions">
                            {move || {
                                model.list_id.get().map(|id| {
                                    let key = id.clone();
                                    let count = Signal::derive(move || {
                                        model.lists.with(|lists| {
                                            lists.iter().find(|l| l.id == key).map_or(0, |l| l.conflicts)
                                        })
                                    });
                                    view! {
                                        <ConflictBadge
                                            item_id=id
                                            label=Signal::derive(move || list_name().unwrap_or_default())
                                            count
                                        />
                                    }
                                })
                            }}
                            {move || {
                                model.list_id.get().map(|id| {
                                    view! {
                                        <HistoryButton
                                            item_id=id
                                            label=Signal::derive(move || list_name().unwrap_or_default())
                                        />
                                    }
                                })
                            }}
                            <button type="button" class="rename-button" on:click=move |_| start_rename()>
                                "Rename list"
                            </button>
                            <button type="button" class="delete-list" on:click=move |_| delete_list()>
                                "Delete list"
                            </button>
                        </div>
                    </Show>
                </div>
                <For
                    each=move || deleted.get()
                    key=|(_, _, offer)| *offer
                    children=move |(id, name, _)| {
                        view! {
                            <p class="undo-bar" role="status">
                                {format!("“{name}” was deleted. ")}
                                <button type="button" on:click=move |_| undo_delete(id.clone())>
                                    "Undo"
                                </button>
                            </p>
                        }
                    }
                />
                // A reader's page has no editing affordance (DESIGN.md rule 23).
                // No list to add to (a workspace with none yet): say how to start rather
                // than take words that could go nowhere.
                <Show
                    when=move || model.list_id.with(Option::is_some)
                    fallback=move || view! {
                        <p class="empty-workspace">
                            {move || if account.can_edit() {
                                "No lists here yet. Make one with “New list”."
                            } else {
                                "No lists here yet."
                            }}
                        </p>
                    }
                >
                    <Show when=move || {
                        model.as_of.get().is_none() && account.can_edit()
                    }>
                        <NewTodo error/>
                    </Show>
                </Show>
            </header>
            <Show when=move || model.as_of.get().is_some()>
                <AsOfView/>
            </Show>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            // Hidden, not removed, while the list is empty (TodoMVC's spec and suite); not
            // there at all while the list as it was is shown instead.
            <Show when=move || model.as_of.get().is_none()>
                <section class="main" hidden=move || total() == 0>
                    <input
                        id="toggle-all"
                        class="toggle-all"
                        type="checkbox"
                        prop:checked=all_done
                        on:change=toggle_all
                    />
                    <label for="toggle-all">"Mark all as complete"</label>
                    <ul class="todo-list">
                        <For
                            each=move || visible.get()
                            key=|id| id.clone()
                            children=move |id| {
                                model
                                    .row(&id)
                                    .map(|row| view! { <Item row error visible/> })
                            }
                        />
                    </ul>
                </section>
                <footer class="footer" hidden=move || total() == 0>
                    <span class="todo-count">
                        <strong>{move || counts().active}</strong>
                        {move || if counts().active == 1 { " item left" } else { " items left" }}
                    </span>
                    <ul class="filters">
                        {filter_link(Filter::All, "All")}
                        {filter_link(Filter::Active, "Active")}
                        {filter_link(Filter::Completed, "Completed")}
                    </ul>
                    <Show when=move || { counts().completed > 0 }>
                        <button class="clear-completed" on:click=clear_completed>
                            "Clear completed"
                        </button>
                    </Show>
                </footer>
            </Show>
        </section>
    }
    .into_any()
}

/// Today's date in the viewer's time zone (the browser's calendar).
pub(super) fn today() -> Option<Day> {
    #[cfg(feature = "hydrate")]
    {
        let now = js_sys::Date::new_0();
        Some(Day {
            year: now.get_full_year() as i32,
            month: now.get_month() + 1,
            day: now.get_date(),
        })
    }
    #[cfg(not(feature = "hydrate"))]
    {
        None
    }
}

/// `input.new-todo`: Enter adds (trimmed; empty ignored), a trailing date becomes the due date
/// (shown before Enter; Escape takes the words literally).
#[component]
fn NewTodo(error: RwSignal<Option<String>>) -> AnyView {
    let model = use_model();
    let local = use_local();
    let text = RwSignal::new(String::new());
    let literal = RwSignal::new(false);
    let in_flight = StoredValue::new(None::<(String, (String, String))>);
    let parsed = move || {
        let text = text.get();
        match (today(), literal.get()) {
            (Some(day), false) => quick_add::parse(&text, day),
            _ => quick_add::QuickAdd {
                title: text.trim().to_string(),
                due: None,
                phrase: None,
            },
        }
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        // Enter that ends an IME composition only ends it.
        "Enter" if ev.is_composing() => {}
        "Enter" => {
            let quick = parsed();
            if quick.title.is_empty() {
                return;
            }
            let Some(list_id) = model.list_id.get_untracked() else {
                error.set(Some("Make a list first (New list).".into()));
                return;
            };
            let input: leptos::web_sys::HtmlInputElement = event_target(&ev);
            let sent = input.value();
            // Enter again before the reply (a double press, key repeat) sends the same command
            // again, with the same ids: the worker answers it once (rule 18).
            let ids = match in_flight.get_value() {
                Some((text, ids)) if text == sent => ids,
                _ => (new_id(), new_id()),
            };
            in_flight.set_value(Some((sent.clone(), ids.clone())));
            spawn_local(async move {
                let added = add(local, list_id, quick, ids).await;
                in_flight.set_value(None);
                if added.is_ok() && input.value() == sent {
                    input.set_value("");
                    text.set(String::new());
                    literal.set(false);
                }
                report(error, &added);
            });
        }
        "Escape" if parsed().phrase.is_some() => literal.set(true),
        _ => {}
    };
    view! {
        <input
            class="new-todo"
            placeholder="What needs to be done?"
            aria-label="New to-do"
            autofocus=true
            on:input=move |ev| {
                text.set(event_target_value(&ev));
                literal.set(false);
            }
            on:keydown=on_keydown
        />
        {move || {
            let quick = parsed();
            quick
                .due
                .map(|due| {
                    view! {
                        <p class="quick-due" aria-live="polite">
                            "Due "
                            <time datetime=due.iso() title=due.iso()>
                                {quick_add::spoken(due, today())}
                            </time>
                            " (“" {quick.phrase.unwrap_or_default()}
                            "”; Esc keeps the words)"
                        </p>
                    }
                })
        }}
    }
    .into_any()
}

/// Adds a to-do; `ids` are the command's id and the new to-do's.
async fn add(
    local: Local,
    list_id: String,
    quick: quick_add::QuickAdd,
    (command_id, todo_id): (String, String),
) -> Result<u64, AskError> {
    let command = Command::AddTodo {
        todo_id,
        list_id,
        title: quick.title,
        due_date: quick.due.map(|d| d.iso()),
        after: None,
    };
    local.run_as(command_id, command).await
}

/// Puts the caret in `input.new-todo` (there is one on the page, or none for a reader).
#[cfg(feature = "hydrate")]
pub(super) fn focus_new_todo() {
    if let Some(input) = document()
        .query_selector("input.new-todo")
        .ok()
        .flatten()
        .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok())
    {
        let _ = input.focus();
    }
}
