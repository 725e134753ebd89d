import { type Page } from "@playwright/test";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { expect, test, addTodos, addUser, browserAt, device, E2E_PASSWORD, freshList, items, offlineReady, ownServer, ready, SERVER_BIN, syncStatus } from "./helpers";

// The seed's demonstration scenarios (docs/seeds 000, "Demonstration Scenarios"), end to end:
// each device is a browser of its own (profile on disk, service worker allowed), against a
// server of the test's own that is stopped for real when the network should be gone
// (Playwright's setOffline does not stop a service worker: microsoft/playwright#2311).

async function synced(...pages: Page[]) {
  for (const p of pages) {
    await expect(syncStatus(p)).toHaveAttribute("data-pending", "0", { timeout: 15_000 });
    await expect(syncStatus(p)).toHaveAttribute("data-sync-state", "online", { timeout: 15_000 });
  }
}

test("1. offline work: with the server gone, to-dos are added and completed at once, a reload keeps them, and they sync when it returns", async ({ launchOptions }) => {
  const server = await ownServer();
  const a = await browserAt(server.base, launchOptions);
  const b = await browserAt(server.base, launchOptions);
  try {
    const list = await freshList(a.page, "Weekend");
    await offlineReady(a.page);
    await b.page.goto(list);
    await ready(b.page);

    await server.stop();
    await addTodos(a.page, "mow the lawn", "fix the bike");
    await items(a.page).nth(0).locator("input.toggle").check();
    await expect(items(a.page).nth(0)).toHaveClass(/completed/);
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "3");
    await a.page.reload();
    await ready(a.page);
    await expect(items(a.page).locator("label")).toHaveText(["mow the lawn", "fix the bike"]);
    await expect(items(a.page).nth(0)).toHaveClass(/completed/);
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "3");

    await server.start();
    await synced(a.page, b.page);
    await expect(items(b.page).locator("label")).toHaveText(["mow the lawn", "fix the bike"], { timeout: 10_000 });
    await expect(items(b.page).nth(0)).toHaveClass(/completed/);
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

test("2. online sync: what one device does shows on the other within a second", async ({ launchOptions }) => {
  const server = await ownServer();
  const a = await browserAt(server.base, launchOptions);
  const b = await browserAt(server.base, launchOptions);
  try {
    const list = await freshList(a.page, "Shared");
    await b.page.goto(list);
    await ready(b.page);
    await synced(a.page, b.page);
    await addTodos(a.page, "from the laptop");
    await expect(items(b.page).locator("label")).toHaveText(["from the laptop"], { timeout: 1_000 });
    await items(b.page).nth(0).locator("input.toggle").check();
    await expect(items(a.page).nth(0)).toHaveClass(/completed/, { timeout: 1_000 });
    await addTodos(b.page, "from the phone");
    await expect(items(a.page).locator("label")).toHaveText(["from the laptop", "from the phone"], { timeout: 1_000 });
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

test("3. conflict: two devices edit the same to-do apart; both show one value and the conflict, and resolving it on one ends it on both", async ({ launchOptions }) => {
  const server = await ownServer();
  const a = await browserAt(server.base, launchOptions);
  const b = await browserAt(server.base, launchOptions);
  try {
    const list = await freshList(a.page, "Errands");
    await addTodos(a.page, "buy milk");
    await b.page.goto(list);
    await ready(b.page);
    await expect(items(b.page).locator("label")).toHaveText(["buy milk"]);
    await synced(a.page, b.page);

    await server.stop();
    for (const [page, title] of [[a.page, "buy oat milk"], [b.page, "buy almond milk"]] as const) {
      await items(page).nth(0).locator("label").dblclick();
      const edit = items(page).nth(0).locator("input.edit");
      await edit.fill(title);
      await edit.press("Enter");
      await expect(items(page).nth(0).locator("label")).toHaveText(title);
    }
    await server.start();
    await synced(a.page, b.page);
    for (const p of [a.page, b.page]) {
      await expect(items(p).nth(0).getByRole("button", { name: "Resolve conflict" })).toBeVisible({ timeout: 15_000 });
    }
    const shown = (await items(a.page).nth(0).locator("label").textContent()) ?? "";
    await expect(items(b.page).nth(0).locator("label")).toHaveText(shown);

    await items(b.page).nth(0).getByRole("button", { name: "Resolve conflict" }).click();
    const dialog = b.page.getByRole("dialog");
    await expect(dialog.locator(".competing")).toHaveCount(2);
    await dialog.getByRole("textbox", { name: "Merged title" }).fill("buy oat and almond milk");
    await dialog.getByRole("button", { name: "Save merged" }).click();
    await expect(dialog).toBeHidden();
    for (const p of [a.page, b.page]) {
      await expect(items(p).nth(0).locator("label")).toHaveText("buy oat and almond milk", { timeout: 10_000 });
      await expect(items(p).nth(0).getByRole("button", { name: "Resolve conflict" })).toHaveCount(0, { timeout: 10_000 });
    }
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

/** Export lines (as `server export` writes them) of a workspace from before due dates. */
function workspaceBeforeDueDates(): { lines: string; listId: string } {
  const workspace = randomUUID();
  const deviceId = randomUUID();
  const listId = randomUUID();
  const start = Date.UTC(2026, 0, 5, 9, 0, 0);
  const stamp = (n: number) => `${String(start + n).padStart(15, "0")}-${"0".repeat(10)}-${deviceId}`;
  const event = (n: number, aggregate: string, type: string, version: number, data: object) => ({
    seq: n + 1,
    user_id: null,
    event_id: randomUUID(),
    workspace_id: workspace,
    aggregate_id: aggregate,
    event_type: type,
    schema_version: version,
    event_data: data,
    hlc_timestamp: stamp(n),
    device_id: deviceId,
    version: 1,
    created_at: start + n,
  });
  const events = [
    event(0, listId, "ListCreated", 1, { name: "Old list" }),
    // TodoCreated v1: no due_date (docs/protocol.md; read as "no due date" by the upcaster).
    event(1, randomUUID(), "TodoCreated", 1, { list_id: listId, title: "written by an old build", position: "V" }),
    event(2, randomUUID(), "TodoCreated", 1, { list_id: listId, title: "so was this", position: "k" }),
  ];
  return { lines: events.map((e) => JSON.stringify(e)).join("\n") + "\n", listId };
}

test("4. schema evolution: a workspace whose to-dos predate due dates (v1 events, `server import`) opens with due dates editable; the old events stay v1", async ({ launchOptions }) => {
  const run = promisify(execFile);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-v1-"));
  const { lines, listId } = workspaceBeforeDueDates();
  const input = path.join(dataDir, "..", `${path.basename(dataDir)}.jsonl`);
  fs.writeFileSync(input, lines);
  // The account first (password on standard input), then the old workspace, owned by it.
  await addUser(dataDir, "ada");
  await run(SERVER_BIN, ["import", "--data-dir", dataDir, "--input", input, "--owner", "ada"]);
  const server = await ownServer({ dataDir });
  const ada = await browserAt(server.base, launchOptions, "ada", E2E_PASSWORD);
  try {
    const page = ada.page;
    await page.goto(`/lists/${listId}`);
    await ready(page);
    await expect(page.locator("h1.list-title")).toHaveText("Old list");
    await expect(items(page).locator("label")).toHaveText(["written by an old build", "so was this"]);
    await expect(items(page).locator("time.due")).toHaveCount(0);
    const item = items(page).nth(0);
    await item.getByRole("button", { name: "Details of written by an old build" }).click();
    await item.getByLabel("Due").fill("2031-05-01");
    await expect(item.locator("time.due")).toHaveText("Thu 1 May 2031");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    // The device rebuilds its views from its own log: the date is still there.
    await page.goto("/inspect");
    await ready(page);
    await page.getByRole("button", { name: "Rebuild views" }).click();
    await expect(page.locator(".inspect-done")).toContainText(/rebuilt from \d+ events/);
    await page.goto(`/lists/${listId}`);
    await ready(page);
    await expect(items(page).nth(0).locator("time.due")).toHaveText("Thu 1 May 2031");
    // The server's log: the old events were upcast when read, never rewritten.
    const { stdout } = await run(SERVER_BIN, ["query", "--data-dir", dataDir, "SELECT event_type, schema_version FROM events ORDER BY seq"]);
    expect(stdout).toContain('["TodoCreated",1]');
    expect(stdout).toContain('["TodoDueDateSet",1]');
    expect(stdout).not.toContain('["TodoCreated",2]');
  } finally {
    await ada.close();
    await server.close();
    fs.rmSync(input, { force: true });
  }
});
test("5. install and offline cold start: with the server stopped, a reload and a new tab open the lists from this browser, deep links too, and edits sync when it returns", async ({ browser, launchOptions }) => {
  const server = await ownServer();
  const person = await browserAt(server.base, launchOptions);
  try {
    const { page, context } = person;
    const groceries = await freshList(page, "Groceries");
    await addTodos(page, "milk", "bread");
    await items(page).nth(1).locator("input.toggle").check();
    // A second list, made online but never opened at a filter's URL.
    const chores = await freshList(page, "Chores");
    await addTodos(page, "sweep");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    await offlineReady(page);

    await server.stop();
    await page.goto(groceries);
    await ready(page);
    await expect(page.locator("h1.list-title")).toHaveText("Groceries");
    await expect(items(page).locator("label")).toHaveText(["milk", "bread"]);
    await expect(items(page).nth(1)).toHaveClass(/completed/);
    await addTodos(page, "eggs, added offline");
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");
    await expect(syncStatus(page)).toHaveAttribute("data-sync-state", /offline|error/);

    // A reload keeps what was typed offline.
    await page.reload();
    await ready(page);
    await expect(items(page).locator("label")).toHaveText(["milk", "bread", "eggs, added offline"]);

    // A brand-new tab, at URLs this browser never opened.
    const tab = await context.newPage();
    await tab.goto(`${groceries}/active`);
    await ready(tab);
    await expect(items(tab).locator("label")).toHaveText(["milk", "eggs, added offline"]);
    await tab.goto(`${chores}/completed`);
    await ready(tab);
    await expect(tab.locator("h1.list-title")).toHaveText("Chores");
    await expect(items(tab)).toHaveCount(0);
    await tab.goto("/trash");
    await ready(tab);
    await expect(tab.getByRole("heading", { name: "Trash" })).toBeVisible();
    await tab.close();

    await server.start();
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 30_000 });
    const other = await device(browser, server.base);
    await other.page.goto(`${server.base}${groceries}`);
    await ready(other.page);
    await expect(items(other.page).locator("label")).toHaveText(["milk", "bread", "eggs, added offline"]);
    await other.context.close();
  } finally {
    await person.close();
    await server.close();
  }
});

