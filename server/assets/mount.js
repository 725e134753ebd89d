// Starts Tandem from the offline shell (/shell.html, served by the service worker when the
// server cannot be reached): the page's wasm, mounted instead of hydrated. The app then opens
// the account last signed in on this browser from its local store. The build's name in each
// URL makes the service worker answer from that build's own copies: never one build's JS
// with another's wasm. (The server fills in the URLs, each also naming its file's content.)
import init, { mount } from "__TANDEM_PAGE_JS__";

// The browser's install offer, kept for the page before its wasm runs (app/src/pwa.rs).
__TANDEM_KEEP_INSTALL_OFFER__

await init({ module_or_path: "__TANDEM_PAGE_WASM__" });
mount();
