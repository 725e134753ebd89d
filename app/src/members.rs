//! Workspaces in the sidebar (the workspace's name, a switcher, a new workspace) and the
//! "Members" view (`/w/:ws/members`, CONTRACT.md): the members, one list item each — an owner
//! changes roles and removes (confirmed in a dialog) —, leaving, invite links with their role
//! and the pending ones (revocable). All of it talks to the accounts API; none of it is an
//! event of the workspace's log.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use serde_json::{json, Value};

use crate::account::{encode, use_account};
use crate::api;
use crate::dialog::Modal;
use crate::local::mark_ready;

/// The sidebar's workspace block, one row: a switcher of the account's workspaces (showing
/// the current one's name; a full page load opens another, so the page and its worker open
/// it) and "Members".
#[component]
pub fn WorkspaceSwitcher() -> impl IntoView {
    let account = use_account();
    let switch = move |ev: leptos::ev::Event| {
        let id = event_target_value(&ev);
        if Some(&id) != account.workspace.get_untracked().as_ref() {
            api::go(&format!("/w/{}", encode(&id)));
        }
    };
    view! {
        <div class="workspace-switch">
            <select class="workspace-select" aria-label="Workspace" on:change=switch>
                {move || {
                    let current = account.workspace.get();
                    account.session.get().flatten().map(|s| {
                        s.workspaces
                            .into_iter()
                            .map(|w| {
                                let selected = Some(&w.workspace_id) == current.as_ref();
                                view! {
                                    <option value=w.workspace_id.clone() selected=selected>{w.name}</option>
                                }
                            })
                            .collect_view()
                    })
                }}
            </select>
            {move || account.workspace.get().map(|ws| view! {
                <a class="members-link" href=format!("/w/{ws}/members")>"Members"</a>
            })}
            <a class="trash-link" href="/trash">"Trash"</a>
        </div>
    }
}

/// Makes a workspace (its id minted here: a workspace made on a device keeps its id) and opens
/// it.
fn create_workspace(name: String, error: RwSignal<Option<String>>) {
    let id = crate::local::new_id();
    leptos::task::spawn_local(async move {
        match api::call(
            "POST",
            "/api/workspaces",
            Some(json!({"name": name, "workspace_id": id})),
        )
        .await
        {
            Ok(a) if a.ok() => api::go(&format!("/w/{id}")),
            Ok(a) => error.set(Some(a.message())),
            Err(e) => error.set(Some(e)),
        }
    });
}

/// "New workspace": a name, then Enter makes it (with an id minted here) and opens it.
#[component]
fn NewWorkspace(error: RwSignal<Option<String>>) -> impl IntoView {
    view! {
        <label for="new-workspace">"New workspace"</label>
        <input
            id="new-workspace"
            class="new-workspace"
            placeholder="Name, then Enter"
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Enter" {
                    let name = event_target_value(&ev);
                    if !name.trim().is_empty() {
                        create_workspace(name, error);
                    }
                }
            }
        />
    }
}

/// One member as the API lists them.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    user_id: String,
    username: String,
    role: String,
}

fn members_of(body: &Value) -> Vec<Member> {
    body.as_array()
        .map(|a| {
            a.iter()
                .map(|m| Member {
                    user_id: m["user_id"].as_str().unwrap_or("").into(),
                    username: m["username"].as_str().unwrap_or("").into(),
                    role: m["role"].as_str().unwrap_or("").into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `/w/:ws/members`.
#[component]
pub fn MembersRoute() -> impl IntoView {
    let account = use_account();
    let params = use_params_map();
    let ws = params.with_untracked(|p| p.get("ws")).unwrap_or_default();
    account.workspace.set(Some(ws.clone()));
    let members = RwSignal::new(None::<Vec<Member>>);
    let invites = RwSignal::new(Vec::<Value>::new());
    let error = RwSignal::new(None::<String>);
    let revision = RwSignal::new(0u32);
    let me = move || account.user_id();
    let my_role = move || {
        let id = me();
        members
            .get()
            .and_then(|m| m.into_iter().find(|m| Some(&m.user_id) == id.as_ref()))
            .map(|m| m.role)
    };
    let is_owner = move || my_role().as_deref() == Some("owner");
    {
        let ws = ws.clone();
        Effect::new(move |_| {
            revision.track();
            let ws = ws.clone();
            leptos::task::spawn_local(async move {
                match api::call(
                    "GET",
                    &format!("/api/workspaces/{}/members", encode(&ws)),
                    None,
                )
                .await
                {
                    Ok(a) if a.ok() => members.set(Some(members_of(&a.body))),
                    Ok(a) => error.set(Some(a.message())),
                    Err(e) => error.set(Some(e)),
                }
                if let Ok(a) = api::call(
                    "GET",
                    &format!("/api/workspaces/{}/invites", encode(&ws)),
                    None,
                )
                .await
                {
                    if a.ok() {
                        invites.set(a.body.as_array().cloned().unwrap_or_default());
                    }
                }
                mark_ready();
            });
        });
    }
    let act =
        move |method: &'static str, path: String, body: Option<Value>, then: Option<String>| {
            leptos::task::spawn_local(async move {
                match api::call(method, &path, body).await {
                    Ok(a) if a.ok() => match then {
                        Some(go) => api::go(&go),
                        None => revision.update(|r| *r += 1),
                    },
                    Ok(a) => error.set(Some(a.message())),
                    Err(e) => error.set(Some(e)),
                }
            });
        };
    let removing = RwSignal::new(None::<Member>);
    let deleting = RwSignal::new(false);
    let invite_role = RwSignal::new("member".to_string());
    let invite_link = RwSignal::new(None::<String>);
    let invite = {
        let ws = ws.clone();
        move |_| {
            let ws = ws.clone();
            let role = invite_role.get_untracked();
            leptos::task::spawn_local(async move {
                let body = json!({"role": role, "max_uses": 1, "expires_in_s": 7 * 24 * 3600});
                match api::call(
                    "POST",
                    &format!("/api/workspaces/{}/invites", encode(&ws)),
                    Some(body),
                )
                .await
                {
                    Ok(a) if a.ok() => {
                        invite_link.set(a.body["url"].as_str().map(str::to_string));
                        revision.update(|r| *r += 1);
                    }
                    Ok(a) => error.set(Some(a.message())),
                    Err(e) => error.set(Some(e)),
                }
            });
        }
    };
    let ws_path = StoredValue::new(encode(&ws));
    view! {
        <section class="members" aria-labelledby="members-title">
            <p class="back"><a href=format!("/w/{}", encode(&ws))>"← Back to the lists"</a></p>
            <h1 id="members-title" class="list-title">
                {move || format!("Members of {}", account.workspace_name().unwrap_or_else(|| "this workspace".into()))}
            </h1>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <ul class="member-list">
                {move || members.get().unwrap_or_default().into_iter().map(|m| {
                    let mine = Some(&m.user_id) == me().as_ref();
                    let label = if mine { format!("{} (you)", m.username) } else { m.username.clone() };
                    let role_change = {
                        let id = m.user_id.clone();
                        move |ev: leptos::ev::Event| {
                            let role = event_target_value(&ev);
                            act("PATCH", format!("/api/workspaces/{}/members/{}", ws_path.get_value(), encode(&id)), Some(json!({"role": role})), None);
                        }
                    };
                    let leave = {
                        let id = m.user_id.clone();
                        move |_| act("DELETE", format!("/api/workspaces/{}/members/{}", ws_path.get_value(), encode(&id)), None, Some("/".into()))
                    };
                    let remove = {
                        let m = m.clone();
                        move |_| removing.set(Some(m.clone()))
                    };
                    let role = m.role.clone();
                    view! {
                        <li class="member">
                            <span class="member-name">{label}</span>
                            {if is_owner() && !mine {
                                view! {
                                    <select aria-label=format!("Role of {}", m.username) on:change=role_change>
                                        {["owner", "member", "reader"].into_iter().map(|r| view! {
                                            <option value=r selected=r == role>{r}</option>
                                        }).collect_view()}
                                    </select>
                                    <button type="button" class="danger" on:click=remove>"Remove"</button>
                                }.into_any()
                            } else {
                                view! { <span class="member-role">{m.role.clone()}</span> }.into_any()
                            }}
                            {mine.then(|| view! { <button type="button" on:click=leave>"Leave"</button> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {move || removing.get().map(|m| {
                let confirm = {
                    let id = m.user_id.clone();
                    Callback::new(move |_| {
                        removing.set(None);
                        act("DELETE", format!("/api/workspaces/{}/members/{}", ws_path.get_value(), encode(&id)), None, None);
                    })
                };
                view! {
                    <Modal id="remove-title".to_string() title=format!("Remove {}?", m.username) class="confirm" close=Callback::new(move |_| removing.set(None)) confirm=("Remove", confirm)>
                        <p>{format!("{} will no longer read or change this workspace. Their devices keep what they hold but stop syncing it.", m.username)}</p>
                    </Modal>
                }
            })}
            <Show when=is_owner>
                <div class="invite-form">
                    <h2>"Invite someone"</h2>
                    <label for="invite-role">"Role"</label>
                    <select id="invite-role" on:change=move |ev| invite_role.set(event_target_value(&ev))>
                        <option value="member" selected=true>"member (reads and writes)"</option>
                        <option value="reader">"reader (reads only)"</option>
                        <option value="owner">"owner"</option>
                    </select>
                    <button type="button" class="primary" on:click=invite.clone()>"Invite"</button>
                    {move || invite_link.get().map(|url| view! {
                        <label for="invite-link">"Invite link"</label>
                        <input id="invite-link" readonly value=url/>
                        <p class="form-help">"Send this link to one person; it works once, for 7 days."</p>
                    })}
                    <h3>"Pending invites"</h3>
                    {move || invites.get().is_empty().then(|| view! { <p class="form-help">"None."</p> })}
                    <ul class="invite-list">
                        {move || invites.get().into_iter().map(|i| {
                            let id = i["invite_id"].as_str().unwrap_or("").to_string();
                            let text = format!(
                                "{} · {} of {} uses · until {}",
                                i["role"].as_str().unwrap_or(""),
                                i["uses"].as_i64().unwrap_or(0),
                                i["max_uses"].as_i64().unwrap_or(0),
                                crate::conflicts::date_text(i["expires_at"].as_i64().unwrap_or(0))
                            );
                            view! {
                                <li class="invite-item">
                                    <span>{text}</span>
                                    <button type="button" on:click=move |_| act("DELETE", format!("/api/workspaces/{}/invites/{}", ws_path.get_value(), encode(&id)), None, None)>"Revoke"</button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </div>
            </Show>
            <div class="workspace-forms">
                <h2>"Workspace"</h2>
                <Show when=is_owner>
                    <label for="workspace-rename">"Workspace name"</label>
                    <input
                        id="workspace-rename"
                        value=move || account.workspace_name().unwrap_or_default()
                        on:change=move |ev| {
                            let name = event_target_value(&ev);
                            leptos::task::spawn_local(async move {
                                match api::call("PATCH", &format!("/api/workspaces/{}", ws_path.get_value()), Some(json!({"name": name}))).await {
                                    Ok(a) if a.ok() => account.session.refetch(),
                                    Ok(a) => error.set(Some(a.message())),
                                    Err(e) => error.set(Some(e)),
                                }
                            });
                        }
                    />
                </Show>
                <NewWorkspace error/>
                <Show when=is_owner>
                    <button type="button" class="danger delete-workspace" on:click=move |_| deleting.set(true)>
                        "Delete workspace"
                    </button>
                </Show>
            </div>
            {move || deleting.get().then(|| {
                let name = account.workspace_name().unwrap_or_else(|| "this workspace".into());
                let confirm = Callback::new(move |_| {
                    deleting.set(false);
                    act("DELETE", format!("/api/workspaces/{}", ws_path.get_value()), None, Some("/".into()));
                });
                view! {
                    <Modal id="delete-workspace-title".to_string() title=format!("Delete “{name}”?") class="confirm" close=Callback::new(move |_| deleting.set(false)) confirm=("Delete", confirm)>
                        <p>"Every member loses it: nobody can open or sync its lists any more. Devices keep what they hold. This cannot be undone."</p>
                    </Modal>
                }
            })}
        </section>
    }
}

/// The page of an account in no workspace (it left or deleted its last one): make one.
#[component]
pub fn NoWorkspace() -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| crate::local::mark_ready());
    view! {
        <section class="members" aria-labelledby="no-workspace-title">
            <h1 id="no-workspace-title" class="list-title">"No workspace yet"</h1>
            <p>"You are not in any workspace. Make one, or open an invite link someone sent you."</p>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <div class="workspace-forms">
                <NewWorkspace error/>
            </div>
        </section>
    }
}
