//! The signed-in person on the page (CONTRACT.md "The page", DESIGN.md rules 23–24): the
//! session (read by the server for the first paint, so a stranger gets the sign-in form and
//! nothing of a list), the sign-in and sign-up forms, the invite and setup pages, and signing
//! out — which first pushes, says how many changes are unsent and offers their export, then
//! deletes this account's local data and signs out every tab.

use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_params_map, use_query_map};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{self, safe_next};
use crate::dialog::Modal;
use crate::local::{mark_ready, use_local};
use crate::model::use_model;

/// A workspace of the account's, with its role there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub workspace_id: String,
    pub name: String,
    /// `owner`, `member` or `reader`.
    pub role: String,
}

/// Who is signed in, and their workspaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    pub workspaces: Vec<SpaceInfo>,
}

/// `POST /api/session`: the signed-in account and its workspaces, or `null` for a stranger.
#[server(endpoint = "session", input = server_fn::codec::Json, output = server_fn::codec::Json)]
pub async fn current_session() -> Result<Option<Session>, crate::sync::SyncFnError> {
    use tandem_accounts::Caller;
    let Caller::Signed(principal) = crate::sync::ssr::caller() else {
        return Ok(None);
    };
    let service = use_context::<crate::sync::ssr::SyncService>().ok_or_else(|| {
        crate::sync::SyncFnError(tandem_protocol::sync::SyncError::new(
            tandem_protocol::sync::ErrorCode::Internal,
            "the sync service is not running",
        ))
    })?;
    let user = principal.user.clone();
    let workspaces =
        tokio::task::spawn_blocking(move || service.accounts.workspaces_of(&user.user_id))
            .await
            .map_err(|e| {
                crate::sync::SyncFnError(tandem_protocol::sync::SyncError::new(
                    tandem_protocol::sync::ErrorCode::Internal,
                    e.to_string(),
                ))
            })?
            .map_err(|e| crate::sync::SyncFnError(tandem_accounts::access::refusal(e)))?;
    Ok(Some(Session {
        user_id: principal.user.user_id,
        username: principal.user.username,
        workspaces: workspaces
            .into_iter()
            .map(|w| SpaceInfo {
                workspace_id: w.workspace_id,
                name: w.name,
                role: w.role.as_str().to_string(),
            })
            .collect(),
    }))
}

/// The page's account context.
#[derive(Clone, Copy)]
pub struct Account {
    /// The session (`None`: signed out, or the server could not say).
    pub session: Resource<Option<Session>>,
    /// The workspace the page shows, and the account's role there (from the list it shows).
    pub workspace: RwSignal<Option<String>>,
    pub role: RwSignal<Option<String>>,
}

impl Account {
    /// Whether the page may offer editing (not a reader).
    pub fn can_edit(&self) -> bool {
        self.role.get().as_deref() != Some("reader")
    }

    /// The signed-in account's id, once known.
    pub fn user_id(&self) -> Option<String> {
        self.session.get().flatten().map(|s| s.user_id)
    }

    /// The name of the workspace shown.
    pub fn workspace_name(&self) -> Option<String> {
        let ws = self.workspace.get()?;
        self.session
            .get()
            .flatten()?
            .workspaces
            .into_iter()
            .find(|w| w.workspace_id == ws)
            .map(|w| w.name)
    }
}

pub fn provide_account() -> Account {
    let account = Account {
        session: Resource::new_blocking(|| (), |_| read_session()),
        workspace: RwSignal::new(None),
        role: RwSignal::new(None),
    };
    provide_context(account);
    account
}

/// Who is signed in. The server says (it renders the first page with it); a page started from
/// the offline shell uses the session remembered on this browser at once, and so does a page
/// whose server cannot be reached (DESIGN.md rule 24).
async fn read_session() -> Option<Session> {
    if crate::local::mounted_from_shell() {
        if let Some(session) = crate::local::remembered_session() {
            // Started without the server, at once; should the server answer after all and say
            // nobody is signed in, the next start asks to sign in.
            leptos::task::spawn_local(async {
                if let Ok(None) = current_session().await {
                    crate::local::forget_remembered_session();
                }
            });
            return Some(session);
        }
    }
    match current_session().await {
        Ok(None) => {
            crate::local::forget_remembered_session();
            None
        }
        Ok(session) => session,
        // Unreachable or failing: not an answer that the person signed out.
        Err(_) => crate::local::remembered_session(),
    }
}

pub fn use_account() -> Account {
    expect_context::<Account>()
}

/// The path (and query) of this page, to come back to after signing in.
fn here() -> String {
    let location = use_location();
    let path = location.pathname.get_untracked();
    let search = location.search.get_untracked();
    if search.is_empty() {
        path
    } else {
        format!("{path}?{search}")
    }
}

/// Shows `children` to a signed-in person; a stranger gets the sign-in form (and nothing of
/// what the page would show), coming back here after signing in.
#[component]
pub fn Gate(children: ChildrenFn) -> impl IntoView {
    let account = use_account();
    let next = here();
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                account
                    .session
                    .get()
                    .map(|session| match session {
                        Some(_) => children().into_any(),
                        None => view! { <SignIn next=next.clone()/> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

/// Marks an account page ready once hydrated (it has no local store to wait for).
fn ready_when_hydrated() {
    Effect::new(move |_| mark_ready());
}

/// The value of an input by its node.
fn value_of(node: NodeRef<leptos::html::Input>) -> String {
    node.get_untracked().map(|i| i.value()).unwrap_or_default()
}

/// The sign-in form (also `/sign-in?next=...`).
#[component]
pub fn SignIn(#[prop(into)] next: String) -> impl IntoView {
    ready_when_hydrated();
    let username = NodeRef::<leptos::html::Input>::new();
    let password = NodeRef::<leptos::html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let next = safe_next(Some(&next));
    let sign_up = format!("/sign-up?next={}", encode(&next));
    let submit = {
        let next = next.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let body = json!({"username": value_of(username), "password": value_of(password)});
            let next = next.clone();
            busy.set(true);
            leptos::task::spawn_local(async move {
                match api::call("POST", "/api/auth/sign-in", Some(body)).await {
                    Ok(answer) if answer.ok() => api::go(&next),
                    Ok(answer) => error.set(Some(answer.message())),
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        }
    };
    view! {
        <section class="account-form" aria-labelledby="sign-in-title">
            <h1 id="sign-in-title">"Sign in"</h1>
            <form method="post" on:submit=submit>
                <label for="sign-in-username">"Username"</label>
                <input id="sign-in-username" node_ref=username name="username" autocomplete="username" required/>
                <label for="sign-in-password">"Password"</label>
                <input id="sign-in-password" node_ref=password name="password" type="password" autocomplete="current-password" required/>
                {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                <button type="submit" class="primary" disabled=move || busy.get()>"Sign in"</button>
            </form>
            <p class="account-switch">"New here? " <a href=sign_up>"Sign up"</a></p>
        </section>
    }
}

/// The sign-up form: a username and a password (10 characters or more), with an invite or
/// setup token when the page came from one.
#[component]
fn SignUpForm(
    #[prop(into)] invite: Option<String>,
    #[prop(into)] next: String,
    /// Part of an invite's page (whose heading is the page's), not a page of its own.
    #[prop(optional)]
    in_invite: bool,
) -> impl IntoView {
    ready_when_hydrated();
    let username = NodeRef::<leptos::html::Input>::new();
    let password = NodeRef::<leptos::html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let sign_in = format!("/sign-in?next={}", encode(&safe_next(Some(&next))));
    let submit = {
        let invite = invite.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let mut body = json!({"username": value_of(username), "password": value_of(password)});
            if let Some(invite) = &invite {
                body["invite"] = json!(invite);
            }
            let next = safe_next(Some(&next));
            busy.set(true);
            leptos::task::spawn_local(async move {
                match api::call("POST", "/api/auth/sign-up", Some(body)).await {
                    Ok(answer) if answer.ok() => api::go(&next),
                    Ok(answer) => error.set(Some(answer.message())),
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        }
    };
    view! {
        <section class="account-form" aria-labelledby="sign-up-title">
            {if in_invite {
                view! { <h2 id="sign-up-title">"Sign up to join"</h2> }.into_any()
            } else {
                view! { <h1 id="sign-up-title">"Sign up"</h1> }.into_any()
            }}
            <form method="post" on:submit=submit>
                <label for="sign-up-username">"Username"</label>
                <input id="sign-up-username" node_ref=username name="username" autocomplete="username" required/>
                <label for="sign-up-password">"Password"</label>
                <input id="sign-up-password" node_ref=password name="password" type="password" autocomplete="new-password" minlength="10" required/>
                <p class="form-help">"At least 10 characters."</p>
                {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                <button type="submit" class="primary" disabled=move || busy.get()>"Sign up"</button>
            </form>
            <p class="account-switch">"Have an account? " <a href=sign_in>"Sign in"</a></p>
        </section>
    }
}

/// `/sign-in?next=...`.
#[component]
pub fn SignInRoute() -> impl IntoView {
    let query = use_query_map();
    let next = query
        .with_untracked(|q| q.get("next"))
        .unwrap_or_else(|| "/".into());
    view! { <SignIn next/> }
}

/// `/sign-up?invite=...&next=...`.
#[component]
pub fn SignUpRoute() -> impl IntoView {
    let query = use_query_map();
    let (invite, next) = query.with_untracked(|q| (q.get("invite"), q.get("next")));
    // After signing up with an invite, the person joins on its page (with a button).
    let next = match (&invite, next) {
        (Some(token), _) => format!("/invite/{token}"),
        (None, Some(next)) => next,
        (None, None) => "/".into(),
    };
    view! { <SignUpForm invite next/> }
}

/// `/setup/:token`: the one-time link the server printed, to make the first account.
#[component]
pub fn SetupRoute() -> impl IntoView {
    let params = use_params_map();
    let token = params.with_untracked(|p| p.get("token"));
    view! {
        <p class="setup-help">"Make the first account of this server: it will be its admin."</p>
        <SignUpForm invite=token next="/"/>
    }
}

/// `/invite/:token`: what the invite leads to; a stranger signs up (or signs in), then joins
/// with a button — never on opening the page.
#[component]
pub fn InviteRoute() -> impl IntoView {
    let account = use_account();
    let params = use_params_map();
    let token = params
        .with_untracked(|p| p.get("token"))
        .unwrap_or_default();
    let info = RwSignal::new(None::<Result<(String, String, String), String>>);
    {
        let token = token.clone();
        Effect::new(move |_| {
            let token = token.clone();
            leptos::task::spawn_local(async move {
                let answer =
                    api::call("GET", &format!("/api/invites/{}", encode(&token)), None).await;
                info.set(Some(match answer {
                    Ok(a) if a.ok() => Ok((
                        a.body["workspace_name"].as_str().unwrap_or("").to_string(),
                        a.body["role"].as_str().unwrap_or("").to_string(),
                        a.body["invited_by"].as_str().unwrap_or("").to_string(),
                    )),
                    Ok(a) => Err(a.message()),
                    Err(e) => Err(e),
                }));
                mark_ready();
            });
        });
    }
    let error = RwSignal::new(None::<String>);
    let join = {
        let token = token.clone();
        move |_| {
            let token = token.clone();
            leptos::task::spawn_local(async move {
                match api::call(
                    "POST",
                    &format!("/api/invites/{}/accept", encode(&token)),
                    None,
                )
                .await
                {
                    Ok(a) if a.ok() => {
                        let ws = a.body["workspace_id"].as_str().unwrap_or("").to_string();
                        api::go(&format!("/w/{ws}"));
                    }
                    Ok(a) => error.set(Some(a.message())),
                    Err(e) => error.set(Some(e)),
                }
            });
        }
    };
    let here = format!("/invite/{token}");
    view! {
        <section class="invite" aria-labelledby="invite-title">
            <h1 id="invite-title">"You are invited"</h1>
            {move || match info.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="form-error" role="alert">{e}</p> }.into_any(),
                Some(Ok((name, role, by))) => view! {
                    <p class="invite-what">
                        {format!("{by} invites you to the workspace “{name}” as {role}.")}
                    </p>
                }
                .into_any(),
            }}
            <Suspense fallback=|| ()>
                {move || {
                    let join = join.clone();
                    let here = here.clone();
                    let token = token.clone();
                    account.session.get().map(move |session| match session {
                        Some(_) => view! {
                            <button type="button" class="primary" on:click=join>"Join"</button>
                            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                        }
                        .into_any(),
                        None => view! {
                            <SignUpForm invite=Some(token.clone()) next=here.clone() in_invite=true/>
                        }
                        .into_any(),
                    })
                }}
            </Suspense>
        </section>
    }
}

/// The masthead's account corner: who is signed in and "Sign out" (on every page), or the
/// links to sign in and up.
#[component]
pub fn AccountBar() -> impl IntoView {
    let account = use_account();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                account.session.get().map(|session| match session {
                    Some(s) => view! {
                        <div class="account-bar">
                            <a class="account-name" href="/settings" title="Settings">{s.username}</a>
                            <SignOut/>
                        </div>
                    }
                    .into_any(),
                    // A stranger's page is the sign-in form itself, with its "Sign up" link.
                    None => ().into_any(),
                })
            }}
        </Suspense>
    }
}

/// "Sign out": push first, say what is unsent (with its export), delete this account's local
/// data, sign out every tab.
#[component]
fn SignOut() -> impl IntoView {
    let account = use_account();
    let local = use_local();
    let model = use_model();
    // Some(n): n changes are unsent; the person chooses.
    let unsent = RwSignal::new(None::<u64>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let export_url = RwSignal::new(None::<String>);
    on_cleanup(move || {
        if let Some(Some(url)) = export_url.try_get_untracked() {
            crate::inspect::revoke_object_url(&url);
        }
    });
    let user_id = Memo::new(move |_| account.user_id());
    // While this tab signs out, the account's other tabs take no input (their changes would
    // miss the count of what is unsent).
    let signing = RwSignal::new(false);
    let freeze = move || {
        if signing.get_untracked() {
            return;
        }
        signing.set(true);
        if let Some(user) = user_id.get_untracked() {
            leptos::task::spawn_local(async move {
                crate::local::freeze_other_tabs(&user, move || {
                    signing.try_get_untracked().unwrap_or(false)
                })
                .await;
            });
        }
    };
    let finish = move || {
        let user = user_id.get_untracked();
        busy.set(true);
        leptos::task::spawn_local(async move {
            // Signing out needs the server: a session it never heard end would stay valid in
            // this browser's (HttpOnly) cookie for the next person.
            match api::call_as("POST", "/api/auth/sign-out", None, user.as_deref()).await {
                Ok(a) if a.ok() => {}
                Ok(a) => {
                    error.set(Some(a.message()));
                    busy.set(false);
                    signing.set(false);
                    return;
                }
                Err(_) => {
                    error.set(Some(
                        "Signing out needs the server, which cannot be reached: try again when online.".into(),
                    ));
                    busy.set(false);
                    signing.set(false);
                    return;
                }
            }
            local.stop();
            match user {
                Some(user) => crate::local::forget_account(&user).await,
                None => leptos::logging::warn!(
                    "tandem: signed out without knowing whose data to delete"
                ),
            }
            api::go("/");
        });
    };
    let start = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        freeze();
        leptos::task::spawn_local(async move {
            let left = crate::local::push_before_leaving(local, model).await;
            busy.set(false);
            match left {
                Some(0) => finish(),
                // Unknown (the store did not answer) counts as unsent: the person decides.
                other => unsent.set(Some(other.unwrap_or(u64::MAX))),
            }
        });
    };
    let export = move |_| {
        leptos::task::spawn_local(async move {
            // Offered beside "Sign out anyway": a store that cannot export offers no link.
            if let Ok((lines, _)) = local.export().await {
                let url = crate::inspect::object_url(&lines);
                if let Some(Some(old)) = export_url.try_get_untracked() {
                    crate::inspect::revoke_object_url(&old);
                }
                if let Some(Some(url)) = export_url.try_set(Some(url)) {
                    crate::inspect::revoke_object_url(&url);
                }
            }
        });
    };
    view! {
        <button type="button" class="sign-out" on:click=start disabled=move || busy.get()>
            "Sign out"
        </button>
        {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
        {move || {
            unsent.get().map(|n| {
                let cancel = Callback::new(move |_| {
                    unsent.set(None);
                    signing.set(false);
                });
                view! {
                    <Modal id="unsent-title".to_string() title="Sign out with changes unsent?".to_string() class="sign-out-unsent" close=cancel confirm=("Sign out anyway", Callback::new(move |_| finish()))>
                        <p>
                            {match n {
                                1 => "1 change has not reached the server yet. Signing out deletes it from this browser.".to_string(),
                                u64::MAX => "Tandem cannot tell whether every change reached the server. Signing out deletes this browser's copy.".to_string(),
                                n => format!("{n} changes have not reached the server yet. Signing out deletes them from this browser."),
                            }}
                        </p>
                        <p class="unsent-export">
                            <button type="button" on:click=export>"Export unsent changes"</button>
                            {move || export_url.get().map(|url| view! {
                                <a href=url download="tandem-unsent.jsonl">"Download the export"</a>
                            })}
                        </p>
                    </Modal>
                }
            })
        }}
    }
}

/// Percent-encodes a query or path value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
