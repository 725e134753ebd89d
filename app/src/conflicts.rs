//! Conflicts shown and resolved (DESIGN.md rule 19): an item whose field has competing values
//! that differ carries a "Resolve conflict" button; it opens a dialog listing every competing
//! value with its device's name and time. Keeping one (or typing a merged value) records an
//! edit whose bases name every value the dialog listed, which syncs like any edit.
//!
//! Also the device's own name (shown to others in conflicts and the Trash): a default made up
//! from the browser and OS on first open, editable in the sidebar.

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::{Command, Competing, FieldConflict};

use crate::dialog::Modal;
use crate::local::use_local;
use crate::model::use_model;

/// The button on an item in conflict, and its dialog. `item_id` is a todo's or a list's id;
/// `label` names the item for screen readers and the dialog's title.
#[component]
pub fn ConflictBadge(
    item_id: String,
    #[prop(into)] label: Signal<String>,
    #[prop(into)] count: Signal<u64>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let badge_ref = NodeRef::<leptos::html::Button>::new();
    let close = move || {
        open.set(false);
        if let Some(badge) = badge_ref.get_untracked() {
            let _ = badge.focus();
        }
    };
    view! {
        <Show when=move || { count.get() > 0 }>
            <button
                type="button"
                class="conflict-badge"
                node_ref=badge_ref
                aria-label="Resolve conflict"
                aria-haspopup="dialog"
                title=move || format!("“{}” was changed on two devices at once", label.get())
                on:click=move |_| open.set(true)
            >
                <span aria-hidden="true">"⚠ "</span>
                {move || if count.get() == 1 { "Conflict".to_string() } else { format!("{} conflicts", count.get()) }}
            </button>
        </Show>
        <Show when=move || open.get()>
            <ConflictDialog item_id=item_id.clone() label close=Callback::new(move |()| close())/>
        </Show>
    }
}

/// The dialog of an item's conflicts: read from the local store when opened and again after
/// every change set (a value arriving meanwhile shows at once), closed when none is left.
#[component]
fn ConflictDialog(item_id: String, label: Signal<String>, close: Callback<()>) -> impl IntoView {
    let model = use_model();
    let local = use_local();
    let fields = RwSignal::new(None::<Vec<FieldConflict>>);
    let error = RwSignal::new(None::<String>);
    // What is typed as a merged value, per field, and the field whose box has the focus: kept
    // when the fields are drawn again (a competing value arrived meanwhile).
    let drafts = StoredValue::new(std::collections::HashMap::<String, String>::new());
    let focused = StoredValue::new(None::<String>);
    let title_id = format!("conflict-title-{item_id}");
    {
        let item_id = item_id.clone();
        Effect::new(move |_| {
            model.revision.track();
            let id = item_id.clone();
            spawn_local(async move {
                match local.conflicts(id).await {
                    // Unchanged (a change elsewhere): nothing is rendered again.
                    Ok(f) if fields.with_untracked(|old| old.as_ref() != Some(&f)) => {
                        fields.set(Some(f))
                    }
                    Ok(_) => {}
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        });
    }
    let resolve = {
        let item_id = item_id.clone();
        move |field: String, value: String, seen: Vec<String>| {
            let command = Command::ResolveConflict {
                item_id: item_id.clone(),
                field,
                value,
                seen,
            };
            spawn_local(async move {
                error.set(local.run(command).await.err().map(|e| e.to_string()));
            });
        }
    };
    // Resolved (here or elsewhere): nothing is left to choose.
    Effect::new(move |_| {
        if fields.with(|f| f.as_ref().is_some_and(Vec::is_empty)) {
            close.run(());
        }
    });
    let field_view =
        move |f: FieldConflict| {
            let seen: Vec<String> = f.values.iter().map(|v| v.hlc.clone()).collect();
            let name = field_name(&f.field);
            let typed = matches!(f.field.as_str(), "title" | "notes" | "name");
            let options = f
            .values
            .iter()
            .map(|v| {
                let shown = display(&f.field, &v.value, model);
                let meta = meta_text(v, local.device_id.get_untracked().as_deref());
                let (field, value, seen, resolve) =
                    (f.field.clone(), v.value.clone(), seen.clone(), resolve.clone());
                view! {
                    <li class="competing" class:current=v.current>
                        <span class="competing-value">{shown.clone()}</span>
                        <span class="competing-meta">{meta}</span>
                        <button
                            type="button"
                            class="keep"
                            aria-label=format!("Keep this: “{shown}”")
                            on:click=move |_| resolve(field.clone(), value.clone(), seen.clone())
                        >
                            "Keep this"
                        </button>
                    </li>
                }
            })
            .collect_view();
            let merged = typed.then(|| {
                let input_ref = NodeRef::<leptos::html::Input>::new();
                let (field, seen, resolve) = (f.field.clone(), seen.clone(), resolve.clone());
                let save = move || {
                    let Some(input) = input_ref.get_untracked() else {
                        return;
                    };
                    let text = input.value();
                    if text.trim().is_empty() {
                        error.set(Some("Type the merged value first".into()));
                        return;
                    }
                    let value = serde_json::Value::String(text).to_string();
                    resolve(field.clone(), value, seen.clone());
                };
                let save_on_enter = save.clone();
                let draft = drafts
                    .with_value(|d| d.get(&f.field).cloned())
                    .unwrap_or_default();
                let (typed_field, focus_field) = (f.field.clone(), f.field.clone());
                // Drawn again while it had the focus: it gets it back.
                let refocus = f.field.clone();
                Effect::new(move |_| {
                    let Some(input) = input_ref.get() else { return };
                    if focused.with_value(|f| f.as_deref() == Some(refocus.as_str()))
                        && lost_focus()
                    {
                        let _ = input.focus();
                    }
                });
                view! {
                    <div class="merged">
                        <input
                            class="merged-input"
                            node_ref=input_ref
                            prop:value=draft
                            on:input=move |ev| {
                                drafts
                                    .update_value(|d| {
                                        d.insert(typed_field.clone(), event_target_value(&ev));
                                    })
                            }
                            on:focus=move |_| focused.set_value(Some(focus_field.clone()))
                            aria-label=format!("Merged {}", name.to_lowercase())
                            placeholder="Or type a merged value"
                            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                                if ev.key() == "Enter" {
                                    ev.prevent_default();
                                    save_on_enter();
                                }
                            }
                        />
                        <button type="button" class="save-merged" on:click=move |_| save()>
                            "Save merged"
                        </button>
                    </div>
                }
            });
            view! {
                <fieldset class="conflict-field" data-field=f.field.clone()>
                    <legend>{name}</legend>
                    <ul class="competing-list">{options}</ul>
                    {merged}
                </fieldset>
            }
        };
    view! {
        <Modal
            id=title_id
            title=Signal::derive(move || format!("Resolve conflict: {}", label.get()))
            class="conflict-dialog"
            close
        >
            <p class="dialog-help">
                "These values were set at the same time on different devices. Keep one, or type one that merges them: every device will show it."
            </p>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {move || match fields.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(fields) => fields.into_iter().map(&field_view).collect_view().into_any(),
            }}
        </Modal>
    }
}

/// Whether the focus went back to the page itself (the element that had it was removed).
fn lost_focus() -> bool {
    #[cfg(feature = "hydrate")]
    {
        document().active_element().is_none_or(|e| {
            e.tag_name().eq_ignore_ascii_case("body") || e.tag_name().eq_ignore_ascii_case("dialog")
        })
    }
    #[cfg(not(feature = "hydrate"))]
    false
}

/// A field's name as the user reads it.
fn field_name(field: &str) -> &'static str {
    match field {
        "title" => "Title",
        "notes" => "Notes",
        "due_date" => "Due date",
        "completed" => "Done",
        "list" => "List",
        "name" => "Name",
        _ => "Value",
    }
}

/// A competing value (JSON) as the user reads it.
fn display(field: &str, value: &str, model: crate::model::Model) -> String {
    let json: serde_json::Value = serde_json::from_str(value).unwrap_or(serde_json::Value::Null);
    match (field, &json) {
        ("completed", serde_json::Value::Bool(true)) => "Done".into(),
        ("completed", _) => "Not done".into(),
        ("due_date", serde_json::Value::Null) => "No due date".into(),
        ("notes", serde_json::Value::String(s)) if s.is_empty() => "No notes".into(),
        ("list", serde_json::Value::String(id)) => model.lists.with_untracked(|lists| {
            lists
                .iter()
                .find(|l| &l.id == id)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| "A deleted list".into())
        }),
        (_, serde_json::Value::String(s)) => s.clone(),
        _ => value.to_string(),
    }
}

/// "Laptop · 1 Dec 2026, 21:40" with "(this device)" for this one's own edits.
fn meta_text(v: &Competing, this_device: Option<&str>) -> String {
    let mine = this_device == Some(v.device_id.as_str());
    let device = match (&v.device_name, mine) {
        (Some(name), true) => format!("{name} (this device)"),
        (Some(name), false) => name.clone(),
        (None, true) => "This device".into(),
        (None, false) => "Another device".into(),
    };
    let who = match &v.person {
        Some(person) => format!("{person} · {device}"),
        None => device,
    };
    let mut text = format!("{who} · {}", date_time_text(v.at));
    if v.current {
        text.push_str(" · shown now");
    }
    text
}

/// A day as the viewer reads it (their locale and time zone), e.g. "9 Dec 2026".
pub fn date_text(ms: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        let options = js_sys::Object::new();
        for (key, value) in [("day", "numeric"), ("month", "short"), ("year", "numeric")] {
            let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
        }
        String::from(d.to_locale_date_string("default", &options))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ms;
        String::new()
    }
}

/// A moment as the viewer reads it (their locale and time zone).
pub fn date_time_text(ms: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        String::from(d.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ms;
        String::new()
    }
}

/// This device's name, read from the local store when it is ready; a device without one is
/// named from its browser and OS ("Chrome on Linux"). Editable: Enter or leaving the field
/// saves it, and it syncs to every device.
#[component]
pub fn DeviceName() -> impl IntoView {
    let local = use_local();
    let name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let input_ref = NodeRef::<leptos::html::Input>::new();
    let name_device = move |text: String, if_unnamed: bool| {
        let command = Command::NameDevice {
            name: text.clone(),
            if_unnamed,
        };
        spawn_local(async move {
            match local.run(command).await {
                Ok(_) => {
                    error.set(None);
                    if !if_unnamed {
                        name.set(text.trim().to_string());
                    }
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    Effect::new(move |_| {
        if !local.ready.get() {
            return;
        }
        spawn_local(async move {
            let (devices, this_device) = match local.devices().await {
                Ok(devices) => devices,
                Err(e) => return error.set(Some(e.to_string())),
            };
            match devices.into_iter().find(|d| d.device_id == this_device) {
                Some(d) => name.set(d.name),
                None => {
                    let default = default_device_name();
                    name.set(default.clone());
                    name_device(default, true);
                }
            }
        });
    });
    let save = move || {
        let Some(input) = input_ref.get_untracked() else {
            return;
        };
        let text = input.value();
        if text.trim() == name.get_untracked() {
            return;
        }
        if text.trim().is_empty() {
            input.set_value(&name.get_untracked());
            return;
        }
        name_device(text, false);
    };
    view! {
        <div class="device">
            <label class="device-label" for="device-name">"This device"</label>
            <input
                id="device-name"
                class="device-name"
                node_ref=input_ref
                aria-label="Device name"
                maxlength="60"
                prop:value=move || name.get()
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" {
                        save();
                    }
                }
                on:blur=move |_| save()
            />
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
        </div>
    }
}

/// "Chrome on Linux", from the user agent (there is no API that names a device).
fn default_device_name() -> String {
    #[cfg(feature = "hydrate")]
    {
        let agent = window().navigator().user_agent().unwrap_or_default();
        device_name_from_agent(&agent)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        device_name_from_agent("")
    }
}

/// The browser and OS a user agent names, as "Browser on OS".
pub fn device_name_from_agent(agent: &str) -> String {
    let has = |s: &str| agent.contains(s);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        "Browser"
    };
    let os = if has("Android") {
        "Android"
    } else if has("iPhone") || has("iPad") {
        "iOS"
    } else if has("Mac OS X") || has("Macintosh") {
        "macOS"
    } else if has("Windows") {
        "Windows"
    } else if has("CrOS") {
        "ChromeOS"
    } else if has("Linux") {
        "Linux"
    } else {
        "an unknown system"
    };
    format!("{browser} on {os}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_their_user_agent() {
        for (agent, name) in [
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Chrome on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36 Edg/130.0", "Edge on Windows"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1", "Safari on iOS"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36", "Chrome on Android"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:131.0) Gecko/20100101 Firefox/131.0", "Firefox on macOS"),
            ("", "Browser on an unknown system"),
        ] {
            assert_eq!(device_name_from_agent(agent), name, "{agent}");
        }
    }
}
