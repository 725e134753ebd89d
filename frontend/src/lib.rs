//! The page's wasm entry points: `hydrate` the page the server rendered, or `mount` the app
//! into the offline shell (`/shell.html`, served by the service worker when the server cannot
//! be reached). Both run the same component tree, [`app::App`].

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

#[wasm_bindgen]
pub fn mount() {
    console_error_panic_hook::set_once();
    app::local::mark_mounted_from_shell();
    leptos::mount::mount_to_body(app::App);
}
