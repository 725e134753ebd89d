// The raw baseline of the browser benchmarks (make bench-browser): a worker of its own that
// pulls the default workspace into a plain OPFS SQLite table and posts {events, ms}.
import init, { bench_raw_pull } from "/worker/tandem_worker.js";

await init({ module_or_path: "/worker/tandem_worker_bg.wasm" });
try {
  self.postMessage(JSON.parse(await bench_raw_pull(5000)));
} catch (e) {
  self.postMessage({ error: String(e) });
}
