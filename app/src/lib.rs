//! Tandem's Leptos application: the HTML shell, routes and components, compiled twice — into
//! the server (feature `ssr`, server-side rendering and server functions) and into the page's
//! wasm (feature `hydrate`). Kept thin: substance lives in the pure crates and the worker.
// The inspector's views nest deeply enough to pass the default type-layout depth in release.
#![recursion_limit = "256"]

pub mod account;
pub mod api;
mod conflicts;
mod dialog;
mod history;
mod inspect;
pub mod local;
mod members;
pub mod model;
mod pane;
pub mod pwa;
pub mod quick_add;
pub mod server_status;
mod settings;
pub mod snapshot;
pub mod sync;
mod trash;
mod undo;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

use crate::account::{AccountBar, Gate, InviteRoute, SetupRoute, SignInRoute, SignUpRoute};
use crate::model::Model;
use crate::pane::{Banner, ListRoute, Shortcuts, SyncStatusBar};

/// The site's name as cargo-leptos builds it: `/pkg/tandem.js`, `/pkg/tandem.css`, ...
pub const OUTPUT_NAME: &str = "tandem";

/// The content security policy (DESIGN.md rule 23, "the browser is an enemy's target too"):
/// scripts only from this site — the page's inline hydration script by its nonce, never
/// `unsafe-inline` —, wasm compiled, the worker and the live socket from this site, never
/// framed. The server sends it on every response; pages carry their nonce (minted per page
/// request by the server's front layer).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let scripts = match nonce {
        Some(n) => format!("'self' 'wasm-unsafe-eval' 'nonce-{n}'"),
        None => "'self' 'wasm-unsafe-eval'".into(),
    };
    format!(
        "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )
}

/// The URLs the documents name the page's files by, each naming its content
/// (`/pkg/tandem.wasm?h=<hash>`: the server answers such a URL `immutable`, and a new build's
/// files have new URLs). The server makes them from the files it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteUrls {
    pub script: String,
    pub wasm: String,
    pub stylesheet: String,
}

impl SiteUrls {
    /// The files' paths as they are (no content named: revalidated on every use).
    pub fn plain() -> Self {
        Self {
            script: format!("/pkg/{OUTPUT_NAME}.js"),
            wasm: format!("/pkg/{OUTPUT_NAME}.wasm"),
            stylesheet: format!("/pkg/{OUTPUT_NAME}.css"),
        }
    }
}

/// The whole HTML document, rendered by the server around [`App`].
/// (The server's front layer sends the Content-Security-Policy with the nonce it gives the
/// page: `server/src/guard.rs`.)
pub fn shell(urls: SiteUrls) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <HeadTags stylesheet=urls.stylesheet.clone()/>
                <PageScripts script=urls.script wasm=urls.wasm/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// What every document's head carries, the server's pages and the offline shell alike: the
/// viewport, the colour schemes, the stylesheet, the icons and the web app manifest.
#[component]
fn HeadTags(stylesheet: String) -> impl IntoView {
    view! {
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="description" content="Tandem: a local-first collaborative to-do list"/>
        <meta name="color-scheme" content="light dark"/>
        // The browser's bar in the page's own colours (style/main.css `--bg`).
        {theme_color("#f5f6f8", "(prefers-color-scheme: light)")}
        {theme_color("#111418", "(prefers-color-scheme: dark)")}
        <link rel="stylesheet" href=stylesheet/>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
        <link rel="apple-touch-icon" href="/icons/apple-touch-icon.png"/>
        <link rel="manifest" href="/manifest.webmanifest"/>
    }
}

/// `<meta name="theme-color" content=… media=…>` (the view macro knows no `media` on `meta`).
fn theme_color(colour: &'static str, media: &'static str) -> impl IntoView {
    use leptos::tachys::html::attribute::custom::CustomAttribute;
    leptos::html::meta()
        .name("theme-color")
        .content(colour)
        .attr("media", media)
}

/// The page's start: its JS module and wasm fetched early, then the wasm hydrating the
/// server's HTML. (Leptos's `HydrationScripts` does the same with the files' bare names; these
/// name their content, so they are cached for good.) First, the browser's install offer is
/// kept for the page ([`pwa::KEEP_INSTALL_OFFER`]). The inline scripts run by the page's nonce
/// (the content security policy allows no other).
#[component]
fn PageScripts(script: String, wasm: String) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    let quoted = |url: &str| serde_json::to_string(url).unwrap_or_else(|_| "\"\"".into());
    let start = format!(
        "import({}).then(async (page) => {{ await page.default({{ module_or_path: {} }}); page.hydrate(); }});",
        quoted(&script),
        quoted(&wasm)
    );
    view! {
        <script nonce=nonce.clone()>{pwa::KEEP_INSTALL_OFFER}</script>
        <link rel="modulepreload" href=script/>
        <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin="anonymous"/>
        <script type="module" nonce=nonce>{start}</script>
    }
}

/// The offline shell (`/shell.html`): the document the service worker answers a navigation
/// with when the server cannot be reached. It carries nothing of anyone's (no session, no
/// list): `mount_script` (`/mount.js`, naming its build) starts the page's wasm and *mounts*
/// [`App`] — the same component tree the server renders and the page hydrates — which then
/// reads the account last signed in on this browser and its lists from the local store.
/// The URLs are the server's, made from its files and build.
#[cfg(feature = "ssr")]
pub fn offline_shell(stylesheet: &str, mount_script: &str) -> String {
    let head = view! {
        <HeadTags stylesheet=stylesheet.to_string()/>
        <title>"Tandem"</title>
        <script type="module" src=mount_script.to_string()></script>
    }
    .to_html();
    format!("<!DOCTYPE html><html lang=\"en\"><head>{head}</head><body></body></html>")
}

/// The application: routes inside the document body.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let model = Model::new(&Default::default());
    provide_context(model);
    let account = account::provide_account();
    let local = local::provide_local(model);
    pwa::provide_pwa();
    // The worker starts for the signed-in account (its own local databases).
    Effect::new(move |_| match account.session.get() {
        Some(Some(session)) => {
            local::remember_session(&session);
            local::start_for(local, model, &session.user_id);
        }
        // The server rendered this page for nobody: an offline start must not open the lists
        // of whoever was signed in before.
        Some(None) if !local::mounted_from_shell() => local::forget_remembered_session(),
        _ => {}
    });
    let signed_in = move || account.session.get().flatten().is_some();
    // Async: the server waits for the views before sending the page, so the to-dos are in the
    // HTML itself (no streaming that needs JS to show them).
    view! {
        <Title text="Tandem"/>
        <Router>
            <div class="layout">
                <header class="masthead">
                    <a class="brand" href="/">"Tandem"</a>
                    <Suspense fallback=|| ()>
                        {move || signed_in().then(|| view! { <undo::UndoRedo/> })}
                    </Suspense>
                    <pwa::InstallButton/>
                    <AccountBar/>
                </header>
                <pwa::UpdateBanner/>
                <Banner/>
                <main>
                    <Routes fallback=|| view! { <NotFound/> }>
                        <Route path=path!("") view=|| view! { <Gate><ListRoute/></Gate> } ssr=SsrMode::Async/>
                        <Route path=path!("/w/:ws") view=|| view! { <Gate><ListRoute/></Gate> } ssr=SsrMode::Async/>
                        <Route path=path!("/lists/:id") view=|| view! { <Gate><ListRoute/></Gate> } ssr=SsrMode::Async/>
                        <Route path=path!("/lists/:id/:filter") view=|| view! { <Gate><ListRoute/></Gate> } ssr=SsrMode::Async/>
                        <Route path=path!("/trash") view=|| view! { <Gate><trash::TrashRoute/></Gate> }/>
                        <Route path=path!("/inspect") view=|| view! { <Gate><inspect::InspectRoute/></Gate> }/>
                        <Route path=path!("/w/:ws/members") view=|| view! { <Gate><members::MembersRoute/></Gate> }/>
                        <Route path=path!("/settings") view=|| view! { <Gate><settings::SettingsRoute/></Gate> }/>
                        <Route path=path!("/sign-in") view=SignInRoute/>
                        <Route path=path!("/sign-up") view=SignUpRoute/>
                        <Route path=path!("/setup/:token") view=SetupRoute/>
                        <Route path=path!("/invite/:token") view=InviteRoute/>
                    </Routes>
                </main>
                <Suspense fallback=|| ()>
                    {move || signed_in().then(|| view! { <SyncStatusBar/> <Shortcuts/> })}
                </Suspense>
            </div>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http_not_found());
    }
    view! {
        <section class="not-found">
            <h1>"Not found"</h1>
            <p><a href="/">"Back to Tandem"</a></p>
        </section>
    }
}

#[cfg(feature = "ssr")]
fn http_not_found() -> http::StatusCode {
    http::StatusCode::NOT_FOUND
}
