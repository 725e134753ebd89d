//! A modal dialog: the browser's own `<dialog>` opened with `showModal()` (focus stays inside,
//! Escape closes, the page behind is inert), a title that names it, and a Close button.

use leptos::prelude::*;

/// Rendered while it is open; `close` runs when the user closes it (Escape, Close) and the
/// owner then stops rendering it.
#[component]
pub fn Modal(
    /// The element id of the title (the dialog's accessible name).
    id: String,
    #[prop(into)] title: Signal<String>,
    /// A class beside `modal`, for the dialog's own layout.
    class: &'static str,
    close: Callback<()>,
    children: Children,
) -> impl IntoView {
    let dialog_ref = NodeRef::<leptos::html::Dialog>::new();
    Effect::new(move |_| {
        if let Some(dialog) = dialog_ref.get() {
            if !dialog.open() {
                let _ = dialog.show_modal();
            }
        }
    });
    let labelled_by = id.clone();
    view! {
        <dialog
            class=format!("modal {class}")
            node_ref=dialog_ref
            aria-labelledby=labelled_by
            on:close=move |_| close.run(())
        >
            <h2 id=id class="dialog-title">{move || title.get()}</h2>
            {children()}
            <div class="dialog-actions">
                <button type="button" class="dialog-close" on:click=move |_| close.run(())>
                    "Close"
                </button>
            </div>
        </dialog>
    }
}
