import { type Page } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, test, addTodos, browserAt, freshList, items, offlineReady, ownServer, ready, syncStatus } from "./helpers";

// The installable, offline app (issue 18; ARCHITECTURE.md "Offline"). Playwright's `setOffline`
// does not stop a service worker's own fetches (microsoft/playwright#2311): every test here
// runs its own server and stops the process for real. Each browser is a profile on disk with
// service workers allowed (the other suites block them).

/** Every URL path the app's caches hold, with its content type. */
async function cached(page: Page): Promise<{ path: string; type: string }[]> {
  return page.evaluate(async () => {
    const out: { path: string; type: string }[] = [];
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const request of await cache.keys()) {
        const response = await cache.match(request);
        out.push({ path: new URL(request.url).pathname, type: response?.headers.get("content-type") ?? "" });
      }
    }
    return out;
  });
}

/** The width and height a PNG's header states. */
function pngSize(bytes: Buffer): [number, number] {
  expect(bytes.subarray(1, 4).toString("latin1")).toBe("PNG");
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

test("the manifest names an installable app with its icons; the service worker keeps the app shell and never a page of anyone's", async ({ launchOptions }) => {
  const server = await ownServer();
  const person = await browserAt(server.base, launchOptions);
  try {
    const { page, context } = person;
    const response = await page.goto("/");
    const build = (await response?.headerValue("x-tandem-build")) ?? "";
    expect(build).toMatch(/^\d+-/);
    await ready(page);
    await expect(page.locator('link[rel="manifest"]')).toHaveAttribute("href", "/manifest.webmanifest");
    await expect(page.locator('meta[name="theme-color"]')).toHaveCount(2);

    const manifest = await (await context.request.get(`${server.base}/manifest.webmanifest`)).json();
    expect(manifest).toMatchObject({ name: "Tandem", short_name: "Tandem", start_url: "/", scope: "/", display: "standalone" });
    expect(manifest.theme_color).toMatch(/^#[0-9a-f]{6}$/i);
    expect(manifest.background_color).toMatch(/^#[0-9a-f]{6}$/i);
    const icons: { src: string; sizes: string; purpose?: string; type: string }[] = manifest.icons;
    for (const [size, purpose] of [["192x192", "any"], ["512x512", "any"], ["512x512", "maskable"]]) {
      const icon = icons.find((i) => i.sizes === size && (i.purpose ?? "any").split(" ").includes(purpose));
      expect(icon, `${size} ${purpose}`).toBeTruthy();
      const file = await context.request.get(`${server.base}${icon!.src}`);
      expect(file.status()).toBe(200);
      expect(file.headers()["content-type"]).toBe("image/png");
      expect(pngSize(await file.body()).join("x")).toBe(size);
    }

    const names = await offlineReady(page);
    // Installable by the browser's own rules (manifest, icons, a service worker that answers
    // fetches), and its prompt is offered through the "Install" button.
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
    expect(installabilityErrors).toEqual([]);
    // (Chromium offers it to a page loaded once the service worker controls it.) The page's
    // wasm starts a second late here, as on a slow device: Chromium's offer comes 100–200 ms
    // after the load event, and the page keeps an offer made before its wasm ran.
    await context.addInitScript(() => {
      const later = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => (...a: A) => new Promise<void>((r) => setTimeout(r, 1000)).then(() => f(...a));
      WebAssembly.instantiateStreaming = later(WebAssembly.instantiateStreaming);
      WebAssembly.instantiate = later(WebAssembly.instantiate) as typeof WebAssembly.instantiate;
    });
    await page.reload();
    await ready(page);
    const install = page.getByRole("button", { name: "Install" });
    await expect(install).toBeVisible();
    await install.click();
    await expect(install).toBeHidden();
    expect(names).toHaveLength(1);
    expect(names[0]).toContain(`tandem-${build}-`);
    const kept = await cached(page);
    const paths = kept.map((k) => k.path);
    for (const shell of ["/shell.html", "/mount.js", "/pkg/tandem.js", "/pkg/tandem.wasm", "/pkg/tandem.css", "/worker.js", "/manifest.webmanifest"]) {
      expect(paths, shell).toContain(shell);
    }
    expect(paths.some((p) => p.startsWith("/worker/") && p.endsWith(".wasm"))).toBe(true);
    // No page the server rendered (it carries the account's lists), no API answer.
    for (const { path: p, type } of kept) {
      expect(p === "/" || p.startsWith("/lists") || p.startsWith("/api/") || p.startsWith("/w/"), p).toBe(false);
      if (type.startsWith("text/html")) expect(p).toBe("/shell.html");
    }
    // The shell is the same for everyone: nothing of this account in it.
    await freshList(page, "Private plans");
    const shell = await page.evaluate(async () => (await (await caches.open((await caches.keys())[0])).match("/shell.html"))!.text());
    expect(shell).not.toContain("Private plans");
    expect(shell).not.toContain("e2e");
    expect(shell).toContain('src="/mount.js?v=');
  } finally {
    await person.close();
    await server.close();
  }
});

test("offline after signing out: the sign-in form, not the last person's lists", async ({ launchOptions }) => {
  const server = await ownServer();
  const person = await browserAt(server.base, launchOptions);
  try {
    const { page } = person;
    await freshList(page, "Left behind");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    await offlineReady(page);
    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();

    await server.stop();
    await page.goto("/");
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
    await expect(page.getByText("Left behind")).toHaveCount(0);
  } finally {
    await person.close();
    await server.close();
  }
});

test("offline after signing out everywhere (or a session ended elsewhere): the sign-in form, and the data kept for the next sign-in", async ({ launchOptions }) => {
  const server = await ownServer();
  const person = await browserAt(server.base, launchOptions);
  try {
    const { page } = person;
    await freshList(page, "Kept for later");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    await offlineReady(page);
    await page.goto("/settings");
    await ready(page);
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();

    await server.stop();
    await page.goto("/");
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
    await expect(page.getByText("Kept for later")).toHaveCount(0);
  } finally {
    await person.close();
    await server.close();
  }
});

test("a new deploy: the page says a new version is ready and reloads into it; what waited in the outbox is synced", async ({ launchOptions }) => {
  const server = await ownServer();
  const person = await browserAt(server.base, launchOptions);
  try {
    const { page } = person;
    await freshList(page, "Across the update");
    await addTodos(page, "written before");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    const [before] = await offlineReady(page);
    await expect(page.getByRole("status").filter({ hasText: "A new version is ready" })).toHaveCount(0);

    await server.stop();
    await addTodos(page, "waiting in the outbox");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");

    // The same binary announcing a newer build stands in for a deploy (TANDEM_TEST_BUILD).
    const next = `${Math.floor(Date.now() / 1000) + 100000}-next`;
    await server.start({ TANDEM_TEST_BUILD: next });
    await page.evaluate(async () => {
      await (await navigator.serviceWorker.getRegistration())?.update();
    });
    const banner = page.getByRole("status").filter({ hasText: "A new version is ready" });
    await expect(banner).toBeVisible({ timeout: 15_000 });
    await expect.poll(() => page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith("tandem-")))).toEqual([
      expect.stringContaining(`tandem-${next}-`),
    ]);
    expect(before).not.toContain(next);

    await banner.getByRole("button", { name: "Reload" }).click();
    await ready(page);
    await expect(items(page).locator("label")).toHaveText(["written before", "waiting in the outbox"]);
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 30_000 });
  } finally {
    await person.close();
    await server.close();
  }
});

test("one binary: started in an empty directory with no site folder, the server serves the whole site from inside itself, each file named by its content and kept a year", async ({ launchOptions }) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-empty-"));
  const server = await ownServer({ cwd: empty });
  const person = await browserAt(server.base, launchOptions);
  try {
    const { page, context } = person;
    await freshList(page, "From one file");
    await addTodos(page, "works");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    const wasm = await context.request.get(`${server.base}/pkg/tandem.wasm`);
    expect(wasm.status()).toBe(200);
    expect(wasm.headers()["content-type"]).toBe("application/wasm");
    // The finished build's page (cargo-leptos once compiled the server beside the front, and
    // the binary carried the previous build's wasm), sent in the brotli form made at build time.
    expect(wasm.headers()["content-encoding"]).toBe("br");
    const built = fs.readFileSync(path.join(__dirname, "../../target/site/pkg/tandem.wasm"));
    expect(Buffer.compare(await wasm.body(), built)).toBe(0);
    const etag = wasm.headers()["etag"];
    expect(etag).toMatch(/^"[0-9a-f]+-br"$/);
    const again = await context.request.get(`${server.base}/pkg/tandem.wasm`, { headers: { "if-none-match": etag } });
    expect(again.status()).toBe(304);
    // The page names its files by their content: each such URL is kept a year without asking
    // again (the worker's files too, named by /worker.js), and a hash that is not the file's
    // is answered as the plain path is, revalidated.
    const named = await page.evaluate(() =>
      [...document.querySelectorAll("link[rel=modulepreload], link[rel=preload], link[rel=stylesheet]")].map(
        (l) => (l as HTMLLinkElement).getAttribute("href") ?? "",
      ),
    );
    const bootstrap = await (await context.request.get(`${server.base}/worker.js`)).text();
    named.push(...[...bootstrap.matchAll(/"(\/worker\/[^"]+)"/g)].map((m) => m[1]));
    expect(named.map((u) => u.split("?")[0]).sort()).toEqual(
      ["/pkg/tandem.css", "/pkg/tandem.js", "/pkg/tandem.wasm", "/worker/tandem_worker.js", "/worker/tandem_worker_bg.wasm"],
    );
    for (const url of named) {
      expect(url).toMatch(/\?h=[0-9a-f]{24}$/);
      const kept = await context.request.get(`${server.base}${url}`);
      expect(kept.status(), url).toBe(200);
      expect(kept.headers()["cache-control"], url).toBe("public, max-age=31536000, immutable");
    }
    const wrong = await context.request.get(`${server.base}/pkg/tandem.wasm?h=000000000000000000000000`);
    expect(wrong.headers()["cache-control"]).toBe("no-cache");
    expect(fs.readdirSync(empty)).toEqual([]);
  } finally {
    await person.close();
    await server.close();
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
