// Starts Tandem from the offline shell (/shell.html, served by the service worker when the
// server cannot be reached): the page's wasm, mounted instead of hydrated. The app then opens
// the account last signed in on this browser from its local store. The build's name in each
// URL makes the service worker answer from that build's own copies: never one build's JS
// with another's wasm.
import init, { mount } from "/pkg/tandem.js?v=__TANDEM_BUILD__";

await init({ module_or_path: "/pkg/tandem.wasm?v=__TANDEM_BUILD__" });
mount();
