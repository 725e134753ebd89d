//! The installable app, on the page (ARCHITECTURE.md "Offline"): the service worker is
//! registered once the page runs; when a newer build's service worker has taken over, the page
//! says "A new version is ready" and offers "Reload" (until then the page and its worker keep
//! running their own build: the worker checks the page's build, docs/protocol.md "Builds");
//! the browser's install prompt is kept for an "Install" button.

use leptos::prelude::*;

/// The global the document's first script keeps the browser's install offer in, and the event
/// it sends when it does ([`KEEP_INSTALL_OFFER`]).
#[cfg(any(feature = "hydrate", test))]
const OFFER: &str = "tandemInstallOffer";
#[cfg(any(feature = "hydrate", test))]
const OFFERED: &str = "tandem-install-offer";

/// Keeps the browser's install offer (`beforeinstallprompt`) from the document's start: the
/// server's page runs it inline, the offline shell in `/mount.js`. Chromium makes the offer
/// 100–200 ms after the load event, once per page, and a page's wasm can start later than that
/// (a slow device, a busy machine): a listener of the wasm's own would miss it and "Install"
/// would never show. The wasm takes the offer from `window.tandemInstallOffer` when it starts
/// and on `tandem-install-offer` afterwards.
pub const KEEP_INSTALL_OFFER: &str = "addEventListener(\"beforeinstallprompt\",function(e){e.preventDefault();self.tandemInstallOffer=e;dispatchEvent(new Event(\"tandem-install-offer\"))});";

/// What the page knows of its service worker and the browser's install prompt.
#[derive(Clone, Copy)]
pub struct Pwa {
    /// A newer build's service worker has taken over: this page's build is out of date.
    pub update_ready: RwSignal<bool>,
    /// The browser offered to install the app (its prompt is kept until used).
    pub can_install: RwSignal<bool>,
}

pub fn provide_pwa() -> Pwa {
    let pwa = Pwa {
        update_ready: RwSignal::new(false),
        can_install: RwSignal::new(false),
    };
    provide_context(pwa);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| browser::start(pwa));
    pwa
}

/// "A new version is ready — Reload", while one is.
#[component]
pub fn UpdateBanner() -> impl IntoView {
    let pwa = expect_context::<Pwa>();
    move || {
        pwa.update_ready.get().then(|| {
            view! {
                <div class="banner banner-info update-banner" role="status">
                    <strong>"A new version is ready. "</strong>
                    "Reload to use it; nothing you wrote is lost. "
                    <button type="button" class="reload-update" on:click=move |_| reload_to_update()>
                        "Reload"
                    </button>
                </div>
            }
        })
    }
}

/// "Install", while the browser offers to install the app.
#[component]
pub fn InstallButton() -> impl IntoView {
    let pwa = expect_context::<Pwa>();
    move || {
        pwa.can_install.get().then(|| {
            view! {
                <button type="button" class="install" title="Install Tandem as an app" on:click=move |_| install(pwa)>
                    <span class="glyph" aria-hidden="true">"⤓"</span>
                    <span class="button-word">"Install"</span>
                </button>
            }
        })
    }
}

fn reload_to_update() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}

fn install(pwa: Pwa) {
    #[cfg(feature = "hydrate")]
    browser::prompt_install(pwa);
    #[cfg(not(feature = "hydrate"))]
    let _ = pwa;
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::RefCell;

    use leptos::prelude::*;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{MessageEvent, ServiceWorkerContainer, ServiceWorkerRegistration};

    use super::{Pwa, OFFER, OFFERED};

    thread_local! {
        /// The registration, once made.
        static REGISTRATION: RefCell<Option<ServiceWorkerRegistration>> = const { RefCell::new(None) };
    }

    fn container() -> Option<ServiceWorkerContainer> {
        let window = web_sys::window()?;
        // Absent where service workers are not allowed (an insecure origin, some private
        // windows): the app then simply does not open offline.
        let navigator = window.navigator();
        js_sys::Reflect::has(&navigator, &JsValue::from_str("serviceWorker"))
            .ok()
            .filter(|has| *has)?;
        Some(navigator.service_worker())
    }

    pub fn start(pwa: Pwa) {
        follow_install_prompt(pwa);
        let Some(container) = container() else { return };
        // The service worker names its build when it takes over and when asked.
        let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(build) = worker_build(&event.data()) {
                if tandem_protocol::build_older(tandem_protocol::BUILD, &build) {
                    pwa.update_ready.set(true);
                }
            }
        });
        container.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        leptos::task::spawn_local(async move {
            let registered = JsFuture::from(container.register("/sw.js")).await;
            match registered {
                Ok(r) => REGISTRATION.with_borrow_mut(|slot| *slot = Some(r.unchecked_into())),
                Err(e) => {
                    leptos::logging::warn!("tandem: no offline copy (service worker: {e:?})");
                    return;
                }
            }
            if let Some(controller) = container.controller() {
                let ask = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&ask, &"type".into(), &"build?".into());
                let _ = controller.post_message(&ask);
            }
        });
        // A tab left open looks for a deploy when it comes back into view.
        let on_visible = Closure::<dyn Fn()>::new(move || {
            let visible = web_sys::window()
                .and_then(|w| w.document())
                .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
            if visible {
                check_for_update();
            }
        });
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            let _ = document.add_event_listener_with_callback(
                "visibilitychange",
                on_visible.as_ref().unchecked_ref(),
            );
        }
        on_visible.forget();
    }

    /// `{type: "tandem-build", build}` from the service worker: its build.
    fn worker_build(data: &JsValue) -> Option<String> {
        let kind = js_sys::Reflect::get(data, &"type".into())
            .ok()?
            .as_string()?;
        if kind != "tandem-build" {
            return None;
        }
        js_sys::Reflect::get(data, &"build".into())
            .ok()?
            .as_string()
    }

    /// Asks the browser to look for a new service worker now.
    pub fn check_for_update() {
        let registration = REGISTRATION.with_borrow(|r| r.clone());
        if let Some(Ok(promise)) = registration.map(|r| r.update()) {
            // Offline it fails; the next look is as good.
            leptos::task::spawn_local(async move {
                let _ = JsFuture::from(promise).await;
            });
        }
    }

    /// The install offer the document's first script kept ([`super::KEEP_INSTALL_OFFER`]),
    /// made before this wasm ran or since.
    fn follow_install_prompt(pwa: Pwa) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let on_offer = Closure::<dyn Fn()>::new(move || {
            pwa.can_install.set(kept_offer().is_some());
        });
        let _ = window.add_event_listener_with_callback(OFFERED, on_offer.as_ref().unchecked_ref());
        on_offer.forget();
        pwa.can_install.set(kept_offer().is_some());
        let on_installed = Closure::<dyn Fn()>::new(move || {
            forget_offer();
            pwa.can_install.set(false);
        });
        let _ = window.add_event_listener_with_callback(
            "appinstalled",
            on_installed.as_ref().unchecked_ref(),
        );
        on_installed.forget();
    }

    fn kept_offer() -> Option<JsValue> {
        let window = web_sys::window()?;
        js_sys::Reflect::get(&window, &OFFER.into())
            .ok()
            .filter(|offer| offer.is_object())
    }

    fn forget_offer() {
        if let Some(window) = web_sys::window() {
            let _ = js_sys::Reflect::delete_property(&window, &OFFER.into());
        }
    }

    /// "Install": the browser's prompt (it can be shown once).
    pub fn prompt_install(pwa: Pwa) {
        let Some(offer) = kept_offer() else {
            return;
        };
        forget_offer();
        pwa.can_install.set(false);
        let shown = js_sys::Reflect::get(&offer, &"prompt".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .map(|f| f.call0(&offer));
        if !matches!(shown, Some(Ok(_))) {
            leptos::logging::warn!("tandem: the browser's install prompt could not be shown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_script_keeps_the_offer_where_the_wasm_looks_for_it() {
        assert!(KEEP_INSTALL_OFFER.starts_with("addEventListener(\"beforeinstallprompt\""));
        assert!(KEEP_INSTALL_OFFER.contains("e.preventDefault()"));
        assert!(KEEP_INSTALL_OFFER.contains(&format!("self.{OFFER}=e;")));
        assert!(KEEP_INSTALL_OFFER.contains(&format!("new Event(\"{OFFERED}\")")));
        // Inline in the page: nothing the HTML text would escape or end early.
        assert!(!KEEP_INSTALL_OFFER.contains(['<', '>', '&']));
    }
}
