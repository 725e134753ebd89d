import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, test, addTodos, device, freePort, freshList, healthy, items, ready, signIn, startServer, stopped, syncStatus } from "./helpers";

// Two devices are two browser contexts: each has its own OPFS, worker and device id.

test("two devices see each other's edits live within 2 s", async ({ browser, page }) => {
  const list = await freshList(page);
  const other = await device(browser);
  // B's pulls, counted (its worker's requests go through its context).
  let pulls = 0;
  await other.context.route("**/api/sync/pull", (route) => {
    pulls += 1;
    return route.continue();
  });
  await other.page.goto(list);
  await ready(other.page);

  const pullsBefore = pulls;
  expect(pullsBefore, "B's first sync pulled (the count sees the worker's requests)").toBeGreaterThan(0);
  await addTodos(page, "from A");
  await expect(items(other.page).locator("label")).toHaveText(["from A"], { timeout: 2_000 });
  // The live message carried the event: B stored it without a pull (docs/protocol.md, "Live").
  expect(pulls).toBe(pullsBefore);

  await addTodos(other.page, "from B");
  await expect(items(page).locator("label")).toHaveText(["from A", "from B"], { timeout: 2_000 });

  await items(other.page).nth(0).locator("input.toggle").check();
  await expect(items(page).nth(0)).toHaveClass(/completed/, { timeout: 2_000 });
  await expect(page.locator("span.todo-count")).toHaveText("1 item left", { timeout: 2_000 });
  await other.context.close();
});

test("offline: writes stay visible with the pending count and reach the other device after reconnecting", async ({ browser, page, context }) => {
  const list = await freshList(page);
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");

  await context.setOffline(true);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "offline");
  await addTodos(page, "written offline", "also offline");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "2");
  await expect(syncStatus(page)).toContainText("2 changes not yet synced");
  // Nothing reached the other device.
  await expect(items(other.page)).toHaveCount(0);

  await context.setOffline(false);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");
  await expect(items(other.page).locator("label")).toHaveText(["written offline", "also offline"], { timeout: 5_000 });
  await other.context.close();
});

test("an edit box keeps what the user types when a change arrives from another device", async ({ browser, page }) => {
  const list = await freshList(page);
  await addTodos(page, "draft");
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);

  await items(page).nth(0).locator("label").dblclick();
  const edit = items(page).nth(0).locator("input.edit");
  await edit.fill("my own words");

  await items(other.page).nth(0).locator("label").dblclick();
  await items(other.page).nth(0).locator("input.edit").fill("their words");
  await items(other.page).nth(0).locator("input.edit").press("Enter");
  // The change arrives underneath the open edit box (the hidden title shows it): the box
  // keeps the typed text.
  await expect(items(page).nth(0).locator("label")).toHaveText("their words", { timeout: 5_000 });
  await expect(items(page).nth(0)).toHaveClass(/editing/);
  await expect(edit).toHaveValue("my own words");
  await edit.press("Enter");
  await expect(items(page).nth(0).locator("label")).toHaveText("my own words");
  await other.context.close();
});

test("notes being typed are kept when another device changes them", async ({ browser, page }) => {
  const list = await freshList(page);
  await addTodos(page, "plan");
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await items(page).nth(0).getByRole("button", { name: "Details of plan" }).click();
  const notes = items(page).nth(0).getByLabel("Notes");
  await notes.click();
  await page.keyboard.type("half a sentence");
  await items(other.page).nth(0).getByRole("button", { name: "Details of plan" }).click();
  await items(other.page).nth(0).getByLabel("Notes").fill("their notes");
  await items(other.page).nth(0).getByLabel("Due").fill("2031-02-03");
  await other.page.locator("input.new-todo").focus(); // blur saves the notes
  // The due date (not being edited here) follows; the notes being typed stay.
  await expect(items(page).nth(0).getByLabel("Due")).toHaveValue("2031-02-03", { timeout: 5_000 });
  await expect(notes).toHaveValue("half a sentence");
  await other.context.close();
});

test("a list name being typed is kept when another device's list arrives", async ({ browser, page }) => {
  const list = await freshList(page);
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await page.getByRole("button", { name: "Rename list" }).click();
  const name = page.getByRole("textbox", { name: "List name" });
  await name.fill("Renamed while things change");
  const arriving = `Arriving ${Date.now().toString(36)}`;
  await other.page.getByRole("textbox", { name: "New list" }).fill(arriving);
  await other.page.getByRole("textbox", { name: "New list" }).press("Enter");
  await expect(page.locator("nav .list-name", { hasText: arriving })).toHaveCount(1, { timeout: 5_000 });
  await expect(name).toHaveValue("Renamed while things change");
  await name.press("Enter");
  await expect(page.locator("h1.list-title")).toHaveText("Renamed while things change");
  await other.context.close();
});

test("a device that cannot sync on its first open shows the empty state and makes no list of its own", async ({ context, page }) => {
  // The page loads, but every sync request fails: the worker's store stays empty.
  await context.route("**/api/sync/**", (route) => route.abort());
  await page.goto("/");
  await ready(page);
  await expect(page.locator(".banner-info")).toContainText("newer changes will download");
  await expect(page.locator("h1.list-title")).toHaveText("No lists yet");
  await expect(page.locator("nav .list-item")).toHaveCount(0);
  // Only its own name waits to be sent (named from its browser and OS on first open).
  await expect(page.getByRole("textbox", { name: "Device name" })).toHaveValue(/ on /);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");
  // A list made now is the device's own, and waits to be sent.
  await page.getByRole("textbox", { name: "New list" }).fill("Made offline");
  await page.getByRole("textbox", { name: "New list" }).press("Enter");
  await expect(page.locator("h1.list-title")).toHaveText("Made offline");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "2");
  await context.unroute("**/api/sync/**");
  await page.getByRole("button", { name: "Sync now" }).click();
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  // Now the server's lists are here too, its first one still first.
  await expect(page.locator("nav .list-item").first()).toContainText("Inbox");
});

test("a failing server shows the error, and Sync now retries", async ({ page, context }) => {
  await freshList(page);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");
  await context.route("**/api/sync/push", (route) => route.fulfill({ status: 500, body: "boom" }));
  await addTodos(page, "stuck for now");
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "error");
  await expect(page.locator(".sync-error")).toContainText("the server answered HTTP 500");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");
  await context.unroute("**/api/sync/push");
  await page.getByRole("button", { name: "Sync now" }).click();
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");
  await expect(page.locator(".sync-error")).toHaveCount(0);
});

test("an answer too large for the worker is refused unread, and nothing is lost", async ({ page, context }) => {
  await freshList(page);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");
  // A broken or hostile server (or a proxy before it) answering 40 MB: the worker reads at
  // most 32 MiB of a sync answer, so it cannot be made to exhaust its memory.
  const huge = "x".repeat(40 * 1024 * 1024);
  await context.route("**/api/sync/push", (route) => route.fulfill({ status: 200, contentType: "application/json", body: huge }));
  await addTodos(page, "kept while the answer is refused");
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "error");
  await expect(page.locator(".sync-error")).toContainText("the server's answer is too large");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");
  await context.unroute("**/api/sync/push");
  await page.getByRole("button", { name: "Sync now" }).click();
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");
  await expect(items(page).locator("label")).toHaveText(["kept while the answer is refused"]);
});

test("the server stopped mid-session: the page says so, keeps writing locally, and loses nothing", async ({ browser }) => {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-cut-"));
  let server = startServer(port, dataDir);
  const base = `http://127.0.0.1:${port}`;
  try {
    await healthy(port);
    const a = await device(browser, base);
    await a.page.goto(`${base}/`);
    await ready(a.page);
    await addTodos(a.page, "before the cut");
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "0");

    await stopped(server);
    await addTodos(a.page, "during the cut");
    await expect(syncStatus(a.page)).toHaveAttribute("data-sync-state", /offline|error/);
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "1");
    await addTodos(a.page, "still during the cut");
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "2");
    await expect(items(a.page).locator("label")).toHaveText(["before the cut", "during the cut", "still during the cut"]);

    server = startServer(port, dataDir);
    await healthy(port);
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "0", { timeout: 30_000 });
    await expect(syncStatus(a.page)).toHaveAttribute("data-sync-state", "online");

    const b = await device(browser, base);
    await b.page.goto(`${base}/`);
    await ready(b.page);
    await expect(items(b.page).locator("label")).toHaveText(["before the cut", "during the cut", "still during the cut"]);
    await a.context.close();
    await b.context.close();
  } finally {
    await stopped(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test("a server restored from a backup: the browser takes its copy and sends again what it lacks, losing nothing", async ({ browser }) => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-before-"));
  const restoredDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-restored-"));
  const backup = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tandem-backup-")), "events.backup");
  const bin = process.env.TANDEM_SERVER_BIN ?? path.join(os.homedir(), ".cache/tandem/target/release/server");
  let server = startServer(port, dataDir);
  try {
    await healthy(port);
    const a = await device(browser, base);
    await a.page.goto(`${base}/`);
    await ready(a.page);
    await addTodos(a.page, "in the backup");
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "0");
    execFileSync(bin, ["backup", "--data-dir", dataDir, "--output", backup]);
    await addTodos(a.page, "sent after the backup");
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "0");
    await a.context.route("**/api/sync/push", (route) => route.abort());
    await addTodos(a.page, "never sent");
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "1");

    // The server is restored from the backup (a new log; sessions end with it).
    await stopped(server);
    execFileSync(bin, ["restore", "--data-dir", restoredDir, "--input", backup]);
    server = startServer(port, restoredDir);
    await healthy(port);
    await signIn(a.context, base);
    await a.context.unroute("**/api/sync/push");
    await a.page.reload();
    await ready(a.page);
    const titles = ["in the backup", "sent after the backup", "never sent"];
    await expect(items(a.page).locator("label")).toHaveText(titles);
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "0", { timeout: 30_000 });
    await expect(syncStatus(a.page)).toHaveAttribute("data-sync-state", "online");
    await expect(items(a.page).locator("label")).toHaveText(titles);
    // The restored server has them all: another device sees them.
    const b = await device(browser, base);
    await b.page.goto(`${base}/`);
    await ready(b.page);
    await expect(items(b.page).locator("label")).toHaveText(titles);
    // And the recovered device keeps working.
    await addTodos(a.page, "after the recovery");
    await expect(items(b.page).locator("label")).toHaveText([...titles, "after the recovery"]);
    await a.context.close();
    await b.context.close();
  } finally {
    await stopped(server);
    for (const dir of [dataDir, restoredDir, path.dirname(backup)]) fs.rmSync(dir, { recursive: true, force: true });
  }
});
