//! The list route (`/`, `/lists/:id`, `/lists/:id/:filter`) and its layout.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use tandem_protocol::data::Filter;

use crate::conflicts::DeviceName;
use crate::local::{mark_ready, use_local};
use crate::model::{use_model, Source};
use crate::snapshot::{list_snapshot, Snapshot};

#[cfg(feature = "hydrate")]
use super::list::focus_new_todo;
use super::list::TodoApp;
use super::sidebar::Sidebar;

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
            } else if crate::local::mounted_from_shell() {
                // Started without the server: the local store, once it has opened.
                let session = account.session.get_untracked().flatten();
                let wanted = workspace_param.as_deref();
                let opened = session.and_then(|s| local.open_last_workspace(account, &s, wanted));
                if opened.is_none() {
                    return Err("this browser keeps no workspace of this account".to_string());
                }
                local.until_ready().await;
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
