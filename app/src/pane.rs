//! The list page: the sidebar of lists, the to-do pane (TodoMVC's markup and behaviour,
//! CONTRACT.md "The page"), the sync status and the banners. Every write goes to the worker as
//! a command and shows once its reply says it is committed (DESIGN.md rule 16): the rows come
//! back in the change set that precedes the reply.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_params_map};
use tandem_protocol::data::{Command, Filter, PageMessage, Reply, Request, TodoRow};

use crate::conflicts::{ConflictBadge, DeviceName};
use crate::history::{AsOfView, HistoryButton};
use crate::local::{mark_ready, new_id, use_local, Local};
use crate::model::{use_model, Source};
use crate::quick_add::{self, Day};
use crate::snapshot::{list_snapshot, Snapshot};

/// `/`, `/lists/:id` and `/lists/:id/:filter`.
///
/// The list the route opens with is a resource (the server renders it; hydration reads it from
/// the page). Everything after — another list, the switch to the local store, a reset — is
/// loaded into the [`Model`](crate::model::Model) in place, so the pane is never rebuilt: no
/// flicker, and nothing typed is lost.
#[component]
pub fn ListRoute() -> impl IntoView {
    let params = use_params_map();
    let model = use_model();
    let local = use_local();
    let account = crate::account::use_account();
    let list_param = move || params.with(|p| p.get("id"));
    let workspace_param = StoredValue::new(untrack(move || params.with(|p| p.get("ws"))));
    let filter = Memo::new(move |_| {
        params.with(|p| {
            p.get("filter")
                .and_then(|f| Filter::from_segment(&f))
                .unwrap_or_default()
        })
    });
    // Once the worker has caught up, lists come from the local store (offline included).
    let fetch = move |list: Option<String>| {
        let workspace_param = workspace_param.get_value();
        async move {
            if local.ready.get_untracked() {
                local.snapshot(list).await
            } else {
                let workspace = if list.is_none() {
                    workspace_param.clone()
                } else {
                    None
                };
                list_snapshot(workspace, list)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    };
    let first_list = untrack(list_param);
    // In the page the future holds the worker handle, which is not `Send`; the page has one
    // thread. (On the server the future is `Send` and may move between threads.)
    #[cfg(feature = "hydrate")]
    let snapshot = Resource::new(
        || (),
        move |_| send_wrapper::SendWrapper::new(fetch(first_list.clone())),
    );
    #[cfg(not(feature = "hydrate"))]
    let snapshot = Resource::new(|| (), move |_| fetch(first_list.clone()));
    // The worker is told once what the server rendered (or that nothing was: it then switches
    // at once), so it can say when its views have caught up.
    let opened = StoredValue::new(false);
    let loaded = move |snapshot: &Snapshot| {
        model.load(&snapshot.view);
        if snapshot.local {
            model.source.set(Source::Local {
                behind: local.behind.get_untracked(),
            });
            model.progress.set(None);
            mark_ready();
        } else if !opened.get_value() {
            let Some(workspace) = snapshot.workspace_id.clone() else {
                // The account has no workspace: nothing to open.
                return;
            };
            opened.set_value(true);
            account.workspace.set(Some(workspace.clone()));
            account.role.set(snapshot.role.clone());
            if let Some(user) = account.user_id() {
                crate::local::remember_workspace(&user, &workspace);
            }
            local.open(
                snapshot.head,
                snapshot.log_id.clone(),
                workspace,
                snapshot.role.clone(),
            );
        }
    };
    // Later loads: another list, or the same list read again (the local store is ready, a
    // reset). Only the latest load lands.
    let latest = StoredValue::new(0u64);
    let first_loaded = StoredValue::new(false);
    let error_loading = RwSignal::new(None::<String>);
    Effect::new(move |previous: Option<(Option<String>, u64)>| {
        let key = (list_param(), local.generation.get());
        if previous.is_some_and(|p| p != key) {
            latest.update_value(|n| *n += 1);
            let mine = latest.get_value();
            let list = key.0.clone();
            leptos::task::spawn_local(async move {
                match fetch(list).await {
                    Ok(snapshot) if latest.get_value() == mine => {
                        error_loading.set(None);
                        loaded(&snapshot);
                    }
                    Ok(_) => {}
                    Err(e) => error_loading.set(Some(e)),
                }
            });
        }
        key
    });
    // Opening or creating another list puts the caret in its new-todo box (TodoMVC: "focused
    // on open"; the first list of a page load has `autofocus`). After the frame that renders it:
    // the box may be mounted by this very change.
    Effect::new(move |previous: Option<Option<String>>| {
        let list = model.list_id.get();
        if previous.is_some_and(|p| p != list) && list.is_some() {
            #[cfg(feature = "hydrate")]
            request_animation_frame(focus_new_todo);
        }
        list
    });
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                snapshot
                    .get()
                    .map(|result| match result {
                        Ok(snapshot) => {
                            // Once: this closure may run again (it renders), and loading the
                            // route's first snapshot again would undo every change since.
                            if !first_loaded.get_value() {
                                first_loaded.set_value(true);
                                untrack(|| loaded(&snapshot));
                            }
                            if !snapshot.local && snapshot.workspace_id.is_none() {
                                return untrack(|| view! { <crate::members::NoWorkspace/> }.into_any());
                            }
                            untrack(|| view! { <Workspace filter/> }.into_any())
                        }
                        Err(e) => {
                            if !first_loaded.get_value() {
                                first_loaded.set_value(true);
                                untrack(|| loaded(&Snapshot::default()));
                            }
                            view! {
                                <p class="load-error" role="alert">
                                    {format!("Cannot load this list: {e}")}
                                </p>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
        {move || {
            error_loading
                .get()
                .map(|e| view! { <p class="load-error" role="alert">{format!("Cannot load this list: {e}")}</p> })
        }}
    }
}

#[component]
fn Workspace(filter: Memo<Filter>) -> AnyView {
    let account = crate::account::use_account();
    view! {
        // This device's name comes after the pane: under the lists on a wide screen, under
        // the list on a phone (out of its way).
        <div class="workspace">
            <Sidebar/>
            <TodoApp filter/>
            <Show when=move || account.can_edit()>
                <DeviceName/>
            </Show>
        </div>
    }
    .into_any()
}

/// The sidebar: every list with its count of active to-dos, and "New list".
#[component]
fn Sidebar() -> AnyView {
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
        local.command(Command::CreateList { list_id, name }, move |reply| {
            creating.set_value(false);
            match reply {
                Reply::Done { .. } => {
                    input.set_value("");
                    error.set(None);
                    navigate(&format!("/lists/{target}"), Default::default());
                }
                Reply::Refused { reason } | Reply::Failed { reason } => error.set(Some(reason)),
                _ => {}
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

/// How long "Undo" stays beside a deleted list (the Trash keeps it after that).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const UNDO_MS: u64 = 5_000;

/// The TodoMVC pane of the current list.
#[component]
fn TodoApp(filter: Memo<Filter>) -> AnyView {
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
        local.command(
            Command::RenameList {
                list_id,
                name: name.clone(),
                shown: Some(stamp),
            },
            move |reply| {
                // Only where it was typed: another list may be open by now.
                if failed(&reply)
                    && !renaming.get_untracked()
                    && model.list_id.get_untracked().as_ref() == Some(&renamed)
                {
                    rename_draft.set_value(Some(name));
                    renaming.set(true);
                }
                report(error, reply);
            },
        );
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
        local.command(
            Command::DeleteList {
                list_id: list_id.clone(),
            },
            move |reply| {
                if matches!(reply, Reply::Done { .. }) {
                    if model.list_id.get_untracked().as_ref() == Some(&list_id) {
                        navigate.with_value(|go| go("/", Default::default()));
                    }
                    // Each offer goes with its own timer (the list may be deleted again after
                    // an undo: that offer has its own few seconds).
                    static OFFERS: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
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
                report(error, reply);
            },
        );
    };
    let undo_delete = move |list_id: String| {
        deleted.update(|d| d.retain(|(id, _, _)| *id != list_id));
        local.command(
            Command::RestoreList {
                list_id: list_id.clone(),
            },
            move |reply| {
                if matches!(reply, Reply::Done { .. }) {
                    navigate.with_value(|go| go(&format!("/lists/{list_id}"), Default::default()));
                }
                report(error, reply);
            },
        );
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
        local.command(Command::ToggleAll { list_id, completed }, move |reply| {
            report(error, reply)
        });
    };
    let clear_completed = move |_| {
        let Some(list_id) = model.list_id.get_untracked() else {
            return;
        };
        local.command(Command::ClearCompleted { list_id }, move |reply| {
            report(error, reply)
        });
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

/// Whether a command was refused or failed (nothing was recorded).
fn failed(reply: &Reply) -> bool {
    matches!(reply, Reply::Refused { .. } | Reply::Failed { .. })
}

/// Shows a refusal or failure inline; a success clears the message.
fn report(error: RwSignal<Option<String>>, reply: Reply) {
    match reply {
        Reply::Refused { reason } | Reply::Failed { reason } => error.set(Some(reason)),
        _ => error.set(None),
    }
}

/// Today's date in the viewer's time zone (the browser's calendar).
fn today() -> Option<Day> {
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
            add(local, list_id, quick, ids, move |reply| {
                in_flight.set_value(None);
                if matches!(reply, Reply::Done { .. }) && input.value() == sent {
                    input.set_value("");
                    text.set(String::new());
                    literal.set(false);
                }
                report(error, reply);
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
fn add(
    local: Local,
    list_id: String,
    quick: quick_add::QuickAdd,
    (command_id, todo_id): (String, String),
    done: impl FnOnce(Reply) + 'static,
) {
    local.request(
        Request::Command {
            command_id,
            command: Command::AddTodo {
                todo_id,
                list_id,
                title: quick.title,
                due_date: quick.due.map(|d| d.iso()),
                after: None,
            },
        },
        done,
    );
}

/// One `li` of `ul.todo-list`.
#[component]
fn Item(
    row: RwSignal<TodoRow>,
    error: RwSignal<Option<String>>,
    visible: Memo<Vec<String>>,
) -> AnyView {
    let account = crate::account::use_account();
    let local = use_local();
    // The box follows the row's completion only when that changes: a change set that rewrites
    // the row (a sync acknowledgement) never resets a box the user just clicked.
    let completed = Memo::new(move |_| row.with(|r| r.completed));
    let editing = RwSignal::new(false);
    let details = RwSignal::new(false);
    // The title and its stamp when editing began: the edit replaces what was shown (rule 19),
    // and a change arriving meanwhile never touches the text being typed.
    let shown = StoredValue::new((String::new(), String::new()));
    let cancelled = StoredValue::new(false);
    // What was typed, when the edit failed: the box opens again with it (never lost).
    let draft = StoredValue::new(None::<String>);
    let edit_ref = NodeRef::<leptos::html::Input>::new();
    let id = move || row.with_untracked(|r| r.id.clone());
    let toggle = move |_| {
        let (todo_id, completed, shown) =
            row.with_untracked(|r| (r.id.clone(), !r.completed, r.completed_hlc.clone()));
        local.command(
            Command::SetCompleted {
                todo_id,
                completed,
                shown: Some(shown),
            },
            move |reply| report(error, reply),
        );
    };
    let destroy = move |_| {
        local.command(Command::DeleteTodo { todo_id: id() }, move |reply| {
            report(error, reply)
        });
    };
    let start_edit = move |()| {
        shown.set_value(row.with_untracked(|r| (r.title.clone(), r.title_hlc.clone())));
        cancelled.set_value(false);
        editing.set(true);
    };
    Effect::new(move |_| {
        if editing.get() {
            if let Some(input) = edit_ref.get() {
                let _ = input.focus();
            }
        }
    });
    // Also called by the blur of an edit box being removed with its item (deleted elsewhere,
    // another list opened), when this item's state may be gone: then it does nothing.
    let save = move |value: String| {
        if editing.try_get_untracked() != Some(true) || cancelled.try_get_value() != Some(false) {
            return;
        }
        editing.set(false);
        let title = value.trim().to_string();
        let (Some((before, stamp)), Some(todo_id)) = (
            shown.try_get_value(),
            row.try_with_untracked(|r| r.id.clone()),
        ) else {
            return;
        };
        if title == before {
            return;
        }
        let command = if title.is_empty() {
            Command::DeleteTodo { todo_id }
        } else {
            Command::EditTitle {
                todo_id,
                title,
                shown: Some(stamp),
            }
        };
        local.command(command, move |reply| {
            // The item may be gone meanwhile (deleted elsewhere): then only the message shows.
            if failed(&reply)
                && editing.try_get_untracked() == Some(false)
                && draft.try_set_value(Some(value)).is_none()
            {
                cancelled.set_value(false);
                editing.set(true);
            }
            report(error, reply);
        });
    };
    // Done by keyboard, focus goes back to the item's title (not lost to the page).
    let label_ref = NodeRef::<leptos::html::Label>::new();
    let refocus = move || {
        // After the item has left its editing state (the title is hidden while editing).
        #[cfg(feature = "hydrate")]
        request_animation_frame(move || {
            if let Some(label) = label_ref.get_untracked() {
                let _ = label.focus();
            }
        });
    };
    let on_edit_keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Enter" if ev.is_composing() => {}
        "Enter" => {
            save(event_target_value(&ev));
            refocus();
        }
        "Escape" => {
            cancelled.set_value(true);
            editing.set(false);
            refocus();
        }
        _ => {}
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if !ev.alt_key() || editing.get_untracked() {
            return;
        }
        // Inside the item's own fields (notes, the due date, the list picker) Alt+arrows keep
        // their native meaning.
        #[cfg(feature = "hydrate")]
        if crate::undo::typing(&ev) {
            return;
        }
        let up = match ev.key().as_str() {
            "ArrowUp" => true,
            "ArrowDown" => false,
            _ => return,
        };
        ev.prevent_default();
        let me = id();
        let order = visible.get_untracked();
        let Some(at) = order.iter().position(|o| *o == me) else {
            return;
        };
        let before = if up {
            match at.checked_sub(1) {
                Some(prev) => Some(order[prev].clone()),
                None => return,
            }
        } else if at + 1 >= order.len() {
            return;
        } else {
            order.get(at + 2).cloned()
        };
        let refocus_id = me.clone();
        local.command(
            Command::MoveTodo {
                todo_id: me,
                before,
            },
            move |reply| {
                // The moved item's node was re-inserted, which drops focus: put it back.
                #[cfg(feature = "hydrate")]
                request_animation_frame(move || {
                    let selector = format!("li[data-todo-id=\"{refocus_id}\"] input.toggle");
                    if let Some(toggle) = document()
                        .query_selector(&selector)
                        .ok()
                        .flatten()
                        .and_then(|e| {
                            wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok()
                        })
                    {
                        let _ = toggle.focus();
                    }
                });
                #[cfg(not(feature = "hydrate"))]
                let _ = refocus_id;
                report(error, reply);
            },
        );
    };
    // Drag to reorder: dropped on another item, this one goes just before it (or just after
    // it, when dragged downwards past it).
    let drag_over = RwSignal::new(false);
    let on_drag_start = move |ev: leptos::ev::DragEvent| {
        if let Some(data) = ev.data_transfer() {
            let _ = data.set_data("text/x-tandem-todo", &id());
            data.set_effect_allowed("move");
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        drag_over.set(false);
        let Some(dragged) = ev
            .data_transfer()
            .and_then(|d| d.get_data("text/x-tandem-todo").ok())
            .filter(|d| !d.is_empty())
        else {
            return;
        };
        let target = id();
        if dragged == target {
            return;
        }
        let order = visible.get_untracked();
        let from = order.iter().position(|o| *o == dragged);
        let to = order.iter().position(|o| *o == target);
        let before = match (from, to) {
            // Downwards: after the target.
            (Some(f), Some(t)) if f < t => order.get(t + 1).cloned(),
            _ => Some(target),
        };
        local.command(
            Command::MoveTodo {
                todo_id: dragged,
                before,
            },
            move |reply| report(error, reply),
        );
    };
    view! {
        <li
            class:completed=move || row.with(|r| r.completed)
            class:editing=move || editing.get()
            class:drag-over=move || drag_over.get()
            data-todo-id=id()
            draggable=move || (!editing.get()).to_string()
            on:dragstart=on_drag_start
            on:dragover=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                drag_over.set(true);
            }
            on:dragleave=move |_| drag_over.set(false)
            on:drop=on_drop
            on:keydown=on_keydown
        >
            <div class="view">
                <input
                    class="toggle"
                    type="checkbox"
                    disabled=move || !account.can_edit()
                    aria-label=move || row.with(|r| format!("Complete {}", r.title))
                    prop:checked=completed
                    on:change=toggle
                />
                // Double-click edits (TodoMVC); so do Enter and F2 on the focused title, for
                // keyboards.
                <label
                    tabindex="0"
                    node_ref=label_ref
                    on:dblclick=move |_| start_edit(())
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if matches!(ev.key().as_str(), "Enter" | "F2") && !ev.alt_key() {
                            ev.prevent_default();
                            start_edit(());
                        }
                    }
                >
                    {move || row.with(|r| r.title.clone())}
                </label>
                <DueDate row class="due"/>
                <ConflictBadge
                    item_id=id()
                    label=Signal::derive(move || row.with(|r| r.title.clone()))
                    count=Signal::derive(move || row.with(|r| r.conflicts))
                />
                <button
                    type="button"
                    class="details-toggle"
                    aria-expanded=move || details.get().to_string()
                    aria-label=move || row.with(|r| format!("Details of {}", r.title))
                    on:click=move |_| details.update(|d| *d = !*d)
                ></button>
                <button
                    class="destroy"
                    aria-label=move || row.with(|r| format!("Delete {}", r.title))
                    on:click=destroy
                ></button>
            </div>
            <Show when=move || details.get() && !editing.get()>
                <Details row error/>
            </Show>
            <Show when=move || editing.get()>
                <input
                    class="edit"
                    node_ref=edit_ref
                    aria-label="Edit to-do"
                    prop:value=draft
                        .try_update_value(Option::take)
                        .flatten()
                        .unwrap_or_else(|| shown.get_value().0)
                    on:keydown=on_edit_keydown
                    on:blur=move |ev| save(event_target_value(&ev))
                />
            </Show>
        </li>
    }
    .into_any()
}

/// An item's detail: notes, due date, and its list. Notes save on blur and keep what is typed
/// when a change arrives meanwhile (the text area is not bound to the row while focused).
#[component]
fn Details(row: RwSignal<TodoRow>, error: RwSignal<Option<String>>) -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let id = move || row.with_untracked(|r| r.id.clone());
    let notes_shown =
        StoredValue::new(row.with_untracked(|r| (r.notes.clone(), r.notes_hlc.clone())));
    // Also called by the blur of the box being removed with its item: then it may find its
    // state gone, and does nothing.
    let save_notes = move |ev: leptos::ev::FocusEvent| {
        let notes = event_target_value(&ev);
        let (Some((before, stamp)), Some(todo_id)) = (
            notes_shown.try_get_value(),
            row.try_with_untracked(|r| r.id.clone()),
        ) else {
            return;
        };
        if notes.trim() == before.trim() {
            return;
        }
        local.command(
            Command::EditNotes {
                todo_id,
                notes,
                shown: Some(stamp),
            },
            move |reply| report(error, reply),
        );
    };
    let refresh_notes = move |_| {
        notes_shown.set_value(row.with_untracked(|r| (r.notes.clone(), r.notes_hlc.clone())));
    };
    let set_due = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        let due_date = (!value.is_empty()).then_some(value);
        let shown = row.with_untracked(|r| r.due_date_hlc.clone());
        local.command(
            Command::SetDueDate {
                todo_id: id(),
                due_date,
                shown: Some(shown),
            },
            move |reply| report(error, reply),
        );
    };
    let move_to = move |ev: leptos::ev::Event| {
        let list_id = event_target_value(&ev);
        if list_id.is_empty() || row.with_untracked(|r| r.list_id == list_id) {
            return;
        }
        local.command(
            Command::MoveToList {
                todo_id: id(),
                list_id,
            },
            move |reply| report(error, reply),
        );
    };
    let field = move |name: &str| format!("{name}-{}", row.with_untracked(|r| r.id.clone()));
    // The notes and the due date follow the row, except while the user is in them (a change
    // arriving from another device never wipes what is being typed).
    let notes_ref = NodeRef::<leptos::html::Textarea>::new();
    let due_ref = NodeRef::<leptos::html::Input>::new();
    let focused = |el: &leptos::web_sys::Element| document().active_element().as_ref() == Some(el);
    Effect::new(move |_| {
        let notes = row.with(|r| r.notes.clone());
        if let Some(area) = notes_ref.get() {
            if !focused(&area) {
                area.set_value(&notes);
            }
        }
    });
    Effect::new(move |_| {
        let due = row.with(|r| r.due_date.clone().unwrap_or_default());
        if let Some(input) = due_ref.get() {
            if !focused(&input) {
                input.set_value(&due);
            }
        }
    });
    view! {
        <div class="details">
            <label class="details-label" for=field("notes")>"Notes"</label>
            <textarea
                id=field("notes")
                class="notes"
                rows="3"
                node_ref=notes_ref
                on:focus=refresh_notes
                on:blur=save_notes
            ></textarea>
            <div class="details-row">
                <label class="details-label" for=field("due")>"Due"</label>
                <input
                    id=field("due")
                    class="due-input"
                    type="date"
                    node_ref=due_ref
                    on:change=set_due
                />
                <DueDate row class="due-spoken"/>
                <label class="details-label" for=field("list")>"List"</label>
                <select id=field("list") class="move-to" on:change=move_to>
                    {move || {
                        let here = row.with(|r| r.list_id.clone());
                        model
                            .lists
                            .get()
                            .into_iter()
                            .map(|l| {
                                let selected = l.id == here;
                                view! { <option value=l.id selected=selected>{l.name}</option> }
                            })
                            .collect_view()
                    }}
                </select>
                <HistoryButton
                    item_id=row.with_untracked(|r| r.id.clone())
                    label=Signal::derive(move || row.with(|r| r.title.clone()))
                />
            </div>
        </div>
    }
}

/// A due date as people say it ("Today", "Fri 4 Dec"; [`quick_add::spoken`]), with the ISO
/// date in `datetime` and on hover. `class` is `due` in the row and `due-spoken` in the detail.
/// Relative words and "overdue" only after hydration: they depend on the viewer's calendar.
#[component]
fn DueDate(row: RwSignal<TodoRow>, class: &'static str) -> impl IntoView {
    let day = RwSignal::new(None::<Day>);
    Effect::new(move |_| day.set(today()));
    move || {
        row.with(|r| r.due_date.clone()).map(|due| {
            let overdue = {
                let due = due.clone();
                move || day.get().is_some_and(|t| due < t.iso()) && !row.with(|r| r.completed)
            };
            let label = {
                let due = due.clone();
                move || match Day::parse(&due) {
                    Some(d) => quick_add::spoken(d, day.get()),
                    None => due.clone(),
                }
            };
            view! {
                <time class=class class:overdue=overdue datetime=due.clone() title=due>
                    {label}
                </time>
            }
        })
    }
}

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
                    " What reached the server is safe there; changes this device had not sent yet are lost with the damaged copy. "
                    <button type="button" on:click=move |_| start_afresh(account)>
                        "Start afresh on this device"
                    </button>
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

/// Puts the caret in `input.new-todo` (there is one on the page, or none for a reader).
#[cfg(feature = "hydrate")]
fn focus_new_todo() {
    if let Some(input) = document()
        .query_selector("input.new-todo")
        .ok()
        .flatten()
        .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok())
    {
        let _ = input.focus();
    }
}

/// Opens the shortcuts list with `?` (outside text fields); `n` focuses the new to-do.
#[component]
pub fn Shortcuts() -> impl IntoView {
    let open = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if crate::undo::typing(&ev) {
                return;
            }
            match ev.key().as_str() {
                "?" => open.update(|o| *o = !*o),
                "Escape" => open.set(false),
                "n" => {
                    ev.prevent_default();
                    focus_new_todo();
                }
                _ => {}
            }
        });
        on_cleanup(move || handle.remove());
    }
    view! {
        <Show when=move || open.get()>
            <crate::dialog::Modal
                id="shortcuts-title".to_string()
                title="Keyboard shortcuts".to_string()
                class="shortcuts"
                close=Callback::new(move |()| open.set(false))
            >
                <dl>
                    <dt><kbd>"n"</kbd></dt><dd>"New to-do"</dd>
                    <dt><kbd>"Enter"</kbd></dt><dd>"Add the to-do; on a title, edit it; in an edit, save"</dd>
                    <dt><kbd>"F2"</kbd></dt><dd>"Edit the focused title"</dd>
                    <dt><kbd>"Esc"</kbd></dt><dd>"Cancel an edit; keep a typed date as words"</dd>
                    <dt><kbd>"Alt"</kbd>" + "<kbd>"↑"</kbd>" / "<kbd>"↓"</kbd></dt><dd>"Move the focused to-do"</dd>
                    <dt><kbd>"Ctrl"</kbd>" + "<kbd>"Z"</kbd></dt><dd>"Undo your last change"</dd>
                    <dt><kbd>"Ctrl"</kbd>" + "<kbd>"Shift"</kbd>" + "<kbd>"Z"</kbd></dt><dd>"Redo"</dd>
                    <dt><kbd>"Tab"</kbd></dt><dd>"Next control"</dd>
                    <dt><kbd>"?"</kbd></dt><dd>"Show or hide this list"</dd>
                </dl>
            </crate::dialog::Modal>
        </Show>
    }
}
