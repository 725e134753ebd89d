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
    /// An action beside Close (which then reads "Cancel"): its label and what it does, e.g.
    /// ("Remove", …) in a confirmation. The owner closes the dialog when it is done.
    #[prop(optional)]
    confirm: Option<(&'static str, Callback<()>)>,
    children: Children,
) -> impl IntoView {
    let close_label = if confirm.is_some() { "Cancel" } else { "Close" };
    let dialog_ref = NodeRef::<leptos::html::Dialog>::new();
    // The control that opened the dialog gets the focus back when it goes (the owner stops
    // rendering it, so the browser's own return on `close()` does not happen) — or, when that
    // control is gone (a conflict's button once it is resolved), the first control of its row.
    let opener = StoredValue::new_local(None::<leptos::web_sys::HtmlElement>);
    let row = StoredValue::new_local(None::<leptos::web_sys::Element>);
    Effect::new(move |_| {
        if let Some(dialog) = dialog_ref.get() {
            if !dialog.open() {
                let focused = focused_element();
                row.set_value(
                    focused
                        .as_ref()
                        .and_then(|e| e.closest("li").ok().flatten()),
                );
                opener.set_value(focused);
                let _ = dialog.show_modal();
            }
        }
    });
    on_cleanup(move || {
        let opener = opener.try_get_value().flatten();
        let row = row.try_get_value().flatten();
        if opener.is_none() && row.is_none() {
            return;
        }
        // Once the dialog has left the page: until then everything else is inert.
        request_animation_frame(move || {
            if let Some(opener) = opener.filter(|o| o.is_connected()) {
                let _ = opener.focus();
            } else if let Some(control) = row
                .filter(|r| r.is_connected())
                .and_then(|r| r.query_selector("input, button, [tabindex]").ok().flatten())
                .and_then(|e| {
                    leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::HtmlElement>(e).ok()
                })
            {
                let _ = control.focus();
            }
        });
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
                    {close_label}
                </button>
                {confirm.map(|(label, run)| view! {
                    <button type="button" class="dialog-confirm danger" on:click=move |_| run.run(())>
                        {label}
                    </button>
                })}
            </div>
        </dialog>
    }
}

/// The element that has the focus now, if any.
fn focused_element() -> Option<leptos::web_sys::HtmlElement> {
    use leptos::wasm_bindgen::JsCast;
    document()
        .active_element()
        .and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok())
}
