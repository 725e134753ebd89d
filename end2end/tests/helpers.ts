import { chromium, expect, test as base, type Browser, type BrowserContext, type LaunchOptions, type Page } from "@playwright/test";
import * as fs from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

/** The account the suites share (accounts are on: every path needs one). */
export const E2E_USER = "e2e";
export const E2E_PASSWORD = "e2e password, long enough";

/** The suite's server. */
export const BASE = `http://127.0.0.1:${process.env.E2E_PORT ?? 3100}`;

/**
 * Signs `context` in as `username` on the server at `base` (its session cookie lands in the
 * context): signs up first when the account does not exist (the first account of a fresh data
 * dir may sign up on loopback; the suite's server also runs with `--sign-up open`).
 */
export async function signIn(context: BrowserContext, base?: string, username = E2E_USER, password = E2E_PASSWORD) {
  const url = base ?? BASE;
  const headers = { origin: url };
  const tryIn = await context.request.post(`${url}/api/auth/sign-in`, { data: { username, password }, headers });
  if (tryIn.ok()) return;
  const up = await context.request.post(`${url}/api/auth/sign-up`, { data: { username, password }, headers });
  if (!up.ok() && up.status() !== 409) throw new Error(`sign-up of ${username}: ${up.status()} ${await up.text()}`);
  if (up.status() === 409) {
    const again = await context.request.post(`${url}/api/auth/sign-in`, { data: { username, password }, headers });
    if (!again.ok()) throw new Error(`sign-in of ${username}: ${again.status()} ${await again.text()}`);
  }
}

/**
 * Playwright's `test` whose page is signed in as the shared account, in a browser profile on
 * disk: a plain Playwright context is incognito, whose OPFS lives in memory and behaves unlike
 * a person's browser (docs/benchmarks.md: SQLite there takes 10–17 ms per one-row transaction,
 * against ~1 ms on disk), so the suites run where people do. Other devices in a test
 * (`device`) are plain contexts of the shared browser.
 */
export const test = base.extend<{ profileDir: string }>({
  profileDir: async ({}, use) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-profile-"));
    await use(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  },
  context: async ({ profileDir, baseURL, launchOptions, contextOptions, javaScriptEnabled, serviceWorkers, viewport }, use) => {
    const context = await chromium.launchPersistentContext(profileDir, {
      ...launchOptions,
      ...contextOptions,
      baseURL,
      javaScriptEnabled,
      serviceWorkers,
      viewport,
    });
    await signIn(context, baseURL);
    await use(context);
    await context.close();
  },
  // A failing test prints what the page and its worker logged (to see why, not only what).
  page: async ({ context }, use, testInfo) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const logs: string[] = [];
    const at = () => new Date().toISOString().slice(11, 23);
    page.on("console", (m) => logs.push(`${at()} page ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`${at()} page error: ${e.message}`));
    page.on("worker", (w) => w.on("console", (m) => logs.push(`${at()} worker ${m.type()}: ${m.text()}`)));
    page.on("requestfailed", (r) => logs.push(`${at()} request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on("response", (r) => {
      if (r.status() >= 400) logs.push(`${at()} ${r.status()} ${r.url()}`);
    });
    await use(page);
    if (testInfo.status !== testInfo.expectedStatus) {
      const state = await page
        .evaluate(() => {
          const status = document.querySelector("[data-sync-state]");
          return `body ${JSON.stringify(Object.assign({}, document.body.dataset))}; status ${status?.getAttribute("data-sync-state")} pending ${status?.getAttribute("data-pending")}: ${status?.textContent}`;
        })
        .catch((e) => `(page gone: ${e})`);
      console.log(`--- ${testInfo.title}: the page's log\n${logs.join("\n")}\n${state}`);
    }
  },
});
export { expect };

/** Waits until the page is hydrated and shows the local store (CONTRACT.md `data-ready`). */
export async function ready(page: Page) {
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
}

let lists = 0;

/**
 * Opens Tandem and makes a list of its own (tests share one server, so each works in a fresh
 * list). Returns the list's URL path.
 */
export async function freshList(page: Page, name?: string): Promise<string> {
  await page.goto("/");
  await ready(page);
  lists += 1;
  const title = name ?? `List ${Date.now().toString(36)}-${lists}`;
  const input = page.getByRole("textbox", { name: "New list" });
  await input.fill(title);
  await input.press("Enter");
  await expect(page).toHaveURL(/\/lists\/[0-9a-f-]{36}$/);
  await expect(page.locator("h1.list-title")).toHaveText(title);
  return new URL(page.url()).pathname;
}

/** Adds to-dos through `input.new-todo`, waiting for each to show. */
export async function addTodos(page: Page, ...titles: string[]) {
  const input = page.locator("input.new-todo");
  for (const title of titles) {
    const before = await page.locator("ul.todo-list li").count();
    await input.fill(title);
    await input.press("Enter");
    await expect(page.locator("ul.todo-list li")).toHaveCount(before + 1);
  }
}

export function items(page: Page) {
  return page.locator("ul.todo-list li");
}

export function syncStatus(page: Page) {
  return page.getByRole("status").and(page.locator("[data-sync-state]"));
}

/** A second device: its own browser context (its own OPFS, worker and clock). */
export async function device(browser: Browser, base?: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ baseURL: base ?? BASE });
  await signIn(context, base);
  const page = await context.newPage();
  return { context, page };
}

// A server of a test's own (the release binary), for tests that stop it or need a clean one.
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** The release server binary the suites run. */
export const SERVER_BIN = process.env.TANDEM_SERVER_BIN ?? path.join(os.homedir(), ".cache/tandem/target/release/server");

/** `env` adds to the environment, `args` to serve's flags; `cwd` is the checkout's root unless given. */
export function startServer(
  port: number,
  dataDir: string,
  { env = {}, cwd, args = [] }: { env?: Record<string, string>; cwd?: string; args?: string[] } = {},
): ChildProcess {
  return spawn(SERVER_BIN, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", dataDir, "--sign-up", "open", ...args], {
    cwd: cwd ?? path.join(__dirname, "../.."),
    env: { ...process.env, ...env },
    stdio: "ignore",
  });
}

export async function healthy(port: number) {
  await expect
    .poll(async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).status;
      } catch {
        return 0;
      }
    }, { timeout: 15_000 })
    .toBe(200);
}

export async function stopped(server: ChildProcess) {
  if (server.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    server.once("exit", () => resolve());
    server.kill("SIGTERM");
  });
}

/** A server of the test's own, with a fresh data dir, stopped and removed by `close`. */
export async function ownServer(options: { env?: Record<string, string>; cwd?: string; args?: string[]; dataDir?: string } = {}) {
  const port = await freePort();
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "tandem-own-"));
  const base = `http://127.0.0.1:${port}`;
  const own = { port, dataDir, base, process: startServer(port, dataDir, options) as ChildProcess };
  await healthy(port);
  return {
    ...own,
    async stop() {
      await stopped(own.process);
    },
    async start(env: Record<string, string> = {}) {
      own.process = startServer(port, dataDir, { ...options, env });
      await healthy(port);
    },
    async close() {
      await stopped(own.process);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A browser of its own with a profile on disk (its OPFS and service worker survive reloads,
 * service workers allowed), signed in as `username`.
 */
export async function browserAt(base: string, launchOptions: LaunchOptions, username = E2E_USER, password = E2E_PASSWORD) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-pwa-profile-"));
  const context = await chromium.launchPersistentContext(profile, { ...launchOptions, baseURL: base, serviceWorkers: "allow" });
  await signIn(context, base, username, password);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until the service worker controls `page` and has kept this build's files; returns
 * the names of the app's caches.
 */
export async function offlineReady(page: Page): Promise<string[]> {
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await expect.poll(() => page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
  return page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith("tandem-")));
}


/** `server user add NAME` on a data dir (the password on standard input). */
export async function addUser(dataDir: string, username: string, password = E2E_PASSWORD) {
  await new Promise<void>((resolve, reject) => {
    const add = spawn(SERVER_BIN, ["user", "add", username, "--data-dir", dataDir], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    add.stderr!.on("data", (d) => (err += d));
    add.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`user add ${username}: ${err}`))));
    add.stdin!.end(`${password}\n`);
  });
}
