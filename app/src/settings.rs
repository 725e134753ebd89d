//! `/settings`: the account's sessions with their last use (one ends with "End"; "Sign out
//! everywhere" ends them all), its password, its API tokens (made with an optional expiry,
//! shown once; deleted), and deleting the account.

use leptos::prelude::*;
use serde_json::{json, Value};

use crate::account::{encode, use_account};
use crate::api;
use crate::local::mark_ready;

#[component]
pub fn SettingsRoute() -> impl IntoView {
    let account = use_account();
    let local = crate::local::use_local();
    let sessions = RwSignal::new(Vec::<Value>::new());
    let tokens = RwSignal::new(Vec::<Value>::new());
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let revision = RwSignal::new(0u32);
    Effect::new(move |_| {
        revision.track();
        leptos::task::spawn_local(async move {
            if let Ok(a) = api::call("GET", "/api/auth/sessions", None).await {
                if a.ok() {
                    sessions.set(a.body["sessions"].as_array().cloned().unwrap_or_default());
                }
            }
            if let Ok(a) = api::call("GET", "/api/auth/tokens", None).await {
                if a.ok() {
                    tokens.set(a.body["tokens"].as_array().cloned().unwrap_or_default());
                }
            }
            mark_ready();
        });
    });
    let act = move |method: &'static str,
                    path: String,
                    body: Option<Value>,
                    done: Option<&'static str>| {
        leptos::task::spawn_local(async move {
            match api::call(method, &path, body).await {
                Ok(a) if a.ok() => {
                    error.set(None);
                    notice.set(done.map(str::to_string));
                    revision.update(|r| *r += 1);
                }
                Ok(a) => error.set(Some(a.message())),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let everywhere = move |_| {
        leptos::task::spawn_local(async move {
            match api::call("POST", "/api/auth/sign-out-everywhere", None).await {
                Ok(a) if a.ok() => {
                    crate::local::forget_remembered_session();
                    api::go("/")
                }
                Ok(a) => error.set(Some(a.message())),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let old = NodeRef::<leptos::html::Input>::new();
    let new = NodeRef::<leptos::html::Input>::new();
    let change_password = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = |n: NodeRef<leptos::html::Input>| {
            n.get_untracked().map(|i| i.value()).unwrap_or_default()
        };
        act(
            "POST",
            "/api/auth/password".into(),
            Some(json!({"old": value(old), "new": value(new)})),
            Some("Password changed; your other sessions and tokens ended."),
        );
    };
    let token_name = NodeRef::<leptos::html::Input>::new();
    let token_days = NodeRef::<leptos::html::Input>::new();
    let new_token = RwSignal::new(None::<String>);
    let make_token = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = token_name
            .get_untracked()
            .map(|i| i.value())
            .unwrap_or_default();
        let days = token_days
            .get_untracked()
            .and_then(|i| i.value().trim().parse::<u64>().ok())
            .filter(|d| *d > 0);
        let mut body = json!({"name": name});
        if let Some(days) = days {
            body["expires_in_s"] = json!(days * 24 * 3600);
        }
        leptos::task::spawn_local(async move {
            match api::call("POST", "/api/auth/tokens", Some(body)).await {
                Ok(a) if a.ok() => {
                    new_token.set(a.body["token"].as_str().map(str::to_string));
                    revision.update(|r| *r += 1);
                }
                Ok(a) => error.set(Some(a.message())),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let delete_password = NodeRef::<leptos::html::Input>::new();
    let user_id = Memo::new(move |_| account.user_id());
    let delete_account = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let user = user_id.get_untracked();
        let password = delete_password
            .get_untracked()
            .map(|i| i.value())
            .unwrap_or_default();
        leptos::task::spawn_local(async move {
            match api::call(
                "DELETE",
                "/api/auth/me",
                Some(json!({"password": password})),
            )
            .await
            {
                Ok(a) if a.ok() => {
                    if let Some(user) = user {
                        local.stop();
                        crate::local::forget_account(&user).await;
                    }
                    api::go("/");
                }
                Ok(a) => error.set(Some(a.message())),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <section class="settings" aria-labelledby="settings-title">
            <p class="back"><a href="/">"← Back to your lists"</a></p>
            <h1 id="settings-title" class="list-title">"Settings"</h1>
            <p class="signed-in-as">
                {move || account.session.get().flatten().map(|s| format!("Signed in as {}", s.username))}
            </p>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {move || notice.get().map(|n| view! { <p class="form-notice" role="status">{n}</p> })}
            <h2>"Sessions"</h2>
            <ul class="session-list">
                {move || sessions.get().into_iter().map(|s| {
                    let id = s["session_id"].as_str().unwrap_or("").to_string();
                    let current = s["current"].as_bool().unwrap_or(false);
                    let agent = s["user_agent"].as_str().unwrap_or("").to_string();
                    let last = crate::conflicts::date_time_text(s["last_used_at"].as_i64().unwrap_or(0));
                    view! {
                        <li class="session">
                            <span class="session-agent" title=agent.clone()>{if agent.is_empty() { "Unknown browser".to_string() } else { crate::conflicts::device_name_from_agent(&agent) }}</span>
                            <span class="session-last">{format!("Last used {last}")}</span>
                            {if current {
                                view! { <span class="session-current">"This session"</span> }.into_any()
                            } else {
                                view! { <button type="button" on:click=move |_| act("DELETE", format!("/api/auth/sessions/{}", encode(&id)), None, None)>"End"</button> }.into_any()
                            }}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <button type="button" class="danger" on:click=everywhere>"Sign out everywhere"</button>
            <h2>"Password"</h2>
            <form class="password-form" on:submit=change_password>
                <label for="old-password">"Current password"</label>
                <input id="old-password" type="password" node_ref=old autocomplete="current-password" required/>
                <label for="new-password">"New password"</label>
                <input id="new-password" type="password" node_ref=new autocomplete="new-password" minlength="10" required/>
                <button type="submit">"Change password"</button>
            </form>
            <h2>"API tokens"</h2>
            <p class="form-help">"For scripts and other clients: sent as Authorization: Bearer. A token cannot make tokens."</p>
            <form class="token-form" on:submit=make_token>
                <label for="token-name">"Token name"</label>
                <input id="token-name" node_ref=token_name required/>
                <label for="token-days">"Expires in (days, empty: never)"</label>
                <input id="token-days" node_ref=token_days inputmode="numeric"/>
                <button type="submit">"Make a token"</button>
            </form>
            {move || new_token.get().map(|t| view! {
                <label for="new-token">"New token (shown once)"</label>
                <input id="new-token" readonly value=t/>
            })}
            <ul class="token-list">
                {move || tokens.get().into_iter().map(|t| {
                    let id = t["token_id"].as_str().unwrap_or("").to_string();
                    let name = t["name"].as_str().unwrap_or("").to_string();
                    let expires = t["expires_at"].as_i64().map(|ms| format!("expires {}", crate::conflicts::date_time_text(ms))).unwrap_or_else(|| "never expires".into());
                    view! {
                        <li class="token">
                            <span>{format!("{name} · {expires}")}</span>
                            <button type="button" on:click=move |_| act("DELETE", format!("/api/auth/tokens/{}", encode(&id)), None, None)>"Delete"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <h2>"Delete the account"</h2>
            <form class="delete-account" on:submit=delete_account>
                <p class="form-help">"You leave every workspace (a workspace only you are in is deleted); History keeps your name."</p>
                <label for="delete-password">"Password"</label>
                <input id="delete-password" type="password" node_ref=delete_password autocomplete="current-password" required/>
                <button type="submit" class="danger">"Delete my account"</button>
            </form>
        </section>
    }
}
