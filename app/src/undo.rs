//! "Undo" and "Redo" (and Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y, outside text inputs): take back this
//! device's own last actions in the workspace, recorded as compensating events by the worker
//! (DESIGN.md rule 19), so an undo made offline syncs like any edit. The history lives in
//! events.db: it survives a reload and a tab handoff. A refusal (someone changed it since)
//! is shown, naming who.

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::Command;

use crate::local::use_local;
use crate::model::use_model;

#[component]
pub fn UndoRedo() -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let state = model.undo;
    let notice = RwSignal::new(None::<(bool, String)>);
    // What an undo and a redo would do: read when the local store opens (or opens again);
    // after that every command's change set carries it.
    Effect::new(move |_| {
        if !local.ready.get() {
            return;
        }
        local.generation.track();
        spawn_local(async move {
            match local.undo_state().await {
                Ok(labels) => state.set(labels),
                Err(e) => notice.set(Some((true, e.to_string()))),
            }
        });
    });
    let run = move |redo: bool| {
        let label = state.with_untracked(|l| if redo { l.redo.clone() } else { l.undo.clone() });
        let command = if redo { Command::Redo } else { Command::Undo };
        spawn_local(async move {
            notice.set(Some(match local.run(command).await {
                Ok(_) => {
                    let what = label.unwrap_or_default();
                    let text = if redo {
                        format!("Redone: {what}")
                    } else {
                        format!("Undone: {what}")
                    };
                    (false, text)
                }
                Err(e) => (true, e.to_string()),
            }));
        });
    };
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if !(ev.ctrl_key() || ev.meta_key()) || ev.alt_key() || ev.repeat() {
                return;
            }
            // Text fields keep their own undo; a checkbox or a button does not type.
            let typing = typing(&ev);
            if typing || !local.ready.get_untracked() {
                return;
            }
            // By key position, so Caps Lock or another layout does not turn undo into redo.
            let redo = match ev.code().as_str() {
                "KeyZ" => ev.shift_key(),
                "KeyY" => true,
                _ => return,
            };
            ev.prevent_default();
            run(redo);
        });
        on_cleanup(move || handle.remove());
    }
    view! {
        <div class="undo-redo">
            <button
                type="button"
                class="undo"
                disabled=move || state.with(|l| l.undo.is_none())
                title=move || state.with(|l| l.undo.as_ref().map(|l| format!("Undo: {l} (Ctrl+Z)")).unwrap_or_else(|| "Nothing to undo".into()))
                on:click=move |_| run(false)
            >
                // The glyph is decoration: the button's name is "Undo" (CONTRACT.md).
                <span class="glyph" aria-hidden="true">"↶"</span>
                <span class="button-word">"Undo"</span>
            </button>
            <button
                type="button"
                class="redo"
                disabled=move || state.with(|l| l.redo.is_none())
                title=move || state.with(|l| l.redo.as_ref().map(|l| format!("Redo: {l} (Ctrl+Shift+Z)")).unwrap_or_else(|| "Nothing to redo".into()))
                on:click=move |_| run(true)
            >
                <span class="glyph" aria-hidden="true">"↷"</span>
                <span class="button-word">"Redo"</span>
            </button>
            <p class="undo-notice" role="status" aria-live="polite">
                {move || notice.get().map(|(refused, text)| view! { <span class:refused=refused>{text}</span> })}
            </p>
        </div>
    }
}

/// Whether a key event goes to a field that takes text (where keys type, and Ctrl+Z is the
/// field's own undo): text inputs, text areas, selects, editable content — not a checkbox or
/// a button that happens to have focus.
#[cfg(feature = "hydrate")]
pub(crate) fn typing(ev: &leptos::ev::KeyboardEvent) -> bool {
    ev.target()
        .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
        .is_some_and(|el| match el.tag_name().as_str() {
            "TEXTAREA" | "SELECT" => true,
            "INPUT" => !matches!(
                el.get_attribute("type").unwrap_or_default().as_str(),
                "checkbox" | "radio" | "button" | "submit" | "reset" | "range" | "color"
            ),
            _ => wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlElement>(&el)
                .is_some_and(|e| e.is_content_editable()),
        })
}
