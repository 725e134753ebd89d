//! The keyboard shortcuts and their help.

use leptos::prelude::*;

#[cfg(feature = "hydrate")]
use super::list::focus_new_todo;

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
