//! One to-do's row: toggle, title edit, reorder, its details and its due date.

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::{Command, TodoRow};

use crate::conflicts::ConflictBadge;
use crate::history::HistoryButton;
use crate::local::use_local;
use crate::model::use_model;
use crate::quick_add::{self, Day};

use super::list::today;
use super::{report, run_reporting};

/// One `li` of `ul.todo-list`.
#[component]
pub(super) fn Item(
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
        run_reporting(
            local,
            error,
            Command::SetCompleted {
                todo_id,
                completed,
                shown: Some(shown),
            },
        );
    };
    let destroy = move |_| {
        run_reporting(local, error, Command::DeleteTodo { todo_id: id() });
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
        spawn_local(async move {
            let saved = local.run(command).await;
            // The item may be gone meanwhile (deleted elsewhere): then only the message shows.
            if saved.is_err()
                && editing.try_get_untracked() == Some(false)
                && draft.try_set_value(Some(value)).is_none()
            {
                cancelled.set_value(false);
                editing.set(true);
            }
            report(error, &saved);
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
        let command = Command::MoveTodo {
            todo_id: me,
            before,
        };
        spawn_local(async move {
            let moved = local.run(command).await;
            // The moved item's node was re-inserted, which drops focus: put it back.
            #[cfg(feature = "hydrate")]
            request_animation_frame(move || {
                let selector = format!("li[data-todo-id=\"{refocus_id}\"] input.toggle");
                if let Some(toggle) = document()
                    .query_selector(&selector)
                    .ok()
                    .flatten()
                    .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok())
                {
                    let _ = toggle.focus();
                }
            });
            #[cfg(not(feature = "hydrate"))]
            let _ = refocus_id;
            report(error, &moved);
        });
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
        run_reporting(
            local,
            error,
            Command::MoveTodo {
                todo_id: dragged,
                before,
            },
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
pub(super) fn Details(row: RwSignal<TodoRow>, error: RwSignal<Option<String>>) -> impl IntoView {
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
        run_reporting(
            local,
            error,
            Command::EditNotes {
                todo_id,
                notes,
                shown: Some(stamp),
            },
        );
    };
    let refresh_notes = move |_| {
        notes_shown.set_value(row.with_untracked(|r| (r.notes.clone(), r.notes_hlc.clone())));
    };
    let set_due = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        let due_date = (!value.is_empty()).then_some(value);
        let shown = row.with_untracked(|r| r.due_date_hlc.clone());
        run_reporting(
            local,
            error,
            Command::SetDueDate {
                todo_id: id(),
                due_date,
                shown: Some(shown),
            },
        );
    };
    let move_to = move |ev: leptos::ev::Event| {
        let list_id = event_target_value(&ev);
        if list_id.is_empty() || row.with_untracked(|r| r.list_id == list_id) {
            return;
        }
        run_reporting(
            local,
            error,
            Command::MoveToList {
                todo_id: id(),
                list_id,
            },
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
pub(super) fn DueDate(row: RwSignal<TodoRow>, class: &'static str) -> impl IntoView {
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
