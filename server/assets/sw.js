// Tandem's service worker, served by the server with its build's name and file list filled in:
// every deploy changes these bytes, so the browser installs the new one (ARCHITECTURE.md
// "Offline").
//
// - The app shell (the offline document, the page's JS, wasm and CSS, the worker's files, the
//   icons, the manifest) is kept in a cache named after the build, each file checked to come
//   from that build (the X-Tandem-Build header: a portal's or proxy's page is never kept).
//   Older builds' caches go when this one takes over.
// - A request naming this build (`?v=` or `?build=`: the offline shell's files, the worker's)
//   is answered from this build's copies first: one build's JS never meets another's wasm.
//   Everything else goes to the network first — a new server's page must not run an old
//   build's wasm — and the cache answers only when the network cannot.
// - A navigation the server cannot answer (no network, a proxy's 5xx, no answer in time) gets
//   the offline shell, which mounts the app from this browser's local store. Pages the server
//   renders carry an account's data: they are never put in any cache.
// - The API (sync, server functions, sign-in, the live socket), /healthz and /metrics are never
//   touched: the browser fetches them as if there were no service worker.
// - A new build takes over as soon as it is installed (an old one must never open a local
//   store a newer build has migrated); pages of an older build are told, and offer "Reload".
const BUILD = "__TANDEM_BUILD__";
// Named after the files too: a rebuild under the same build name still replaces them.
const CACHE = `tandem-${BUILD}-__TANDEM_FILES__`;
const SHELL = "/shell.html";
const PRECACHE = [__TANDEM_PRECACHE__];
// How long a navigation waits for the server before the offline shell answers it.
const NAVIGATION_TIMEOUT_MS = 8000;

async function keep(cache, url) {
  const response = await fetch(new Request(url, { cache: "reload", credentials: "omit" }));
  if (!response.ok || response.headers.get("x-tandem-build") !== BUILD) {
    throw new Error(`${url} did not come from build ${BUILD} (status ${response.status})`);
  }
  await cache.put(url, response);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await Promise.all(PRECACHE.map((url) => keep(cache, url)));
      await self.skipWaiting();
    })(),
  );
});

async function tellPages() {
  for (const page of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
    page.postMessage({ type: "tandem-build", build: BUILD });
  }
}

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("tandem-") && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
      await tellPages();
    })(),
  );
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "build?" && event.source) {
    event.source.postMessage({ type: "tandem-build", build: BUILD });
  }
});

function passThrough(url) {
  return (
    url.pathname.startsWith("/api/") ||
    url.pathname === "/healthz" ||
    url.pathname === "/metrics" ||
    url.pathname === "/sw.js"
  );
}

// A kept copy, answered as a response of its own: a cached response carries the URL it was
// kept under (`/worker.js`), which a worker would take as its location and lose the query it
// was started with (`?account=…&build=…`); a new Response takes the request's URL.
async function fromCache(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request, { ignoreSearch: true });
  if (!kept) return undefined;
  // Its body is already decoded: the encoding and length it was sent with no longer apply.
  const headers = new Headers(kept.headers);
  headers.delete("content-encoding");
  headers.delete("content-length");
  return new Response(kept.body, { status: kept.status, statusText: kept.statusText, headers });
}

async function navigate(request) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("the server took too long")), NAVIGATION_TIMEOUT_MS);
  });
  try {
    const response = await Promise.race([fetch(request), timeout]);
    // A proxy's error page for a server that is down: Tandem's own errors name their build.
    if (response.status >= 500 && !response.headers.has("x-tandem-build")) throw new Error(`status ${response.status}`);
    return response;
  } catch (e) {
    const shell = await fromCache(SHELL);
    if (shell) return shell;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function networkFirst(request) {
  try {
    return await fetch(request);
  } catch (e) {
    const cached = await fromCache(request);
    if (cached) return cached;
    throw e;
  }
}

async function cacheFirst(request) {
  return (await fromCache(request)) ?? fetch(request);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || passThrough(url)) return;
  if (request.mode === "navigate") {
    event.respondWith(navigate(request));
  } else if (url.searchParams.get("v") === BUILD || url.searchParams.get("build") === BUILD) {
    event.respondWith(cacheFirst(request));
  } else {
    event.respondWith(networkFirst(request));
  }
});
