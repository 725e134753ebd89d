// Bootstrap of Tandem's Dedicated Worker (a module worker): load the worker's own wasm
// (built by scripts/build-worker.sh into /worker/) and start its event loop.
import init, { worker_main } from "/worker/tandem_worker.js";

await init({ module_or_path: "/worker/tandem_worker_bg.wasm" });
await worker_main();
