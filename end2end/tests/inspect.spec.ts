import * as fs from "node:fs";
import { expect, test, addTodos, freshList, items, ready, syncStatus } from "./helpers";

// The inspector (/inspect): the device's own databases as its worker holds them.

test("the inspector shows the state, lists and filters events, queries read-only, rebuilds and exports", async ({ page, context }) => {
  // Counts the export's Blob URLs made and freed (a blob stays in memory until freed).
  await context.addInitScript(() => {
    const counts = { made: 0, freed: 0 };
    (window as unknown as { __blobs: typeof counts }).__blobs = counts;
    const make = URL.createObjectURL.bind(URL);
    const free = URL.revokeObjectURL.bind(URL);
    URL.createObjectURL = (o: Blob | MediaSource) => {
      counts.made += 1;
      return make(o);
    };
    URL.revokeObjectURL = (u: string) => {
      counts.freed += 1;
      free(u);
    };
  });
  const list = await freshList(page);
  await addTodos(page, "milk", "bread");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  await context.setOffline(true);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "offline");
  await addTodos(page, "written offline");

  await page.getByRole("link", { name: "Inspect" }).click();
  await expect(page.getByRole("heading", { name: "Inspector" })).toBeVisible();
  await ready(page);
  const state = page.locator("dl.state");
  await expect(state.locator(".kv", { hasText: "Events in the outbox" }).locator("dd")).toHaveText("1");
  await expect(state.locator(".kv", { hasText: "Clock (HLC now)" }).locator("dd")).toHaveText(/^\d{15}-\d{10}-[0-9a-f-]{36}$/);

  // The log, newest first; filtered by type; the outbox holds the offline one.
  const events = page.locator("table.events-table tbody tr");
  await expect(events.first()).toBeVisible();
  await page.getByRole("textbox", { name: "Type" }).fill("TodoCreated");
  await page.getByRole("textbox", { name: "Type" }).press("Enter");
  await expect
    .poll(async () => [...new Set(await events.locator("td:nth-child(2)").allTextContents())])
    .toEqual(["TodoCreated"]);
  const seqs = (await events.locator("td:nth-child(1)").allTextContents()).map(Number);
  expect(seqs.length).toBeGreaterThanOrEqual(2);
  expect([...seqs].sort((a, b) => b - a)).toEqual(seqs);
  await page.getByRole("combobox", { name: "Table" }).selectOption("outbox");
  await expect(events).toHaveCount(1);
  await expect(events.first()).toContainText("written offline");

  // The console reads views.db and events.db, refuses writes, and stops long queries.
  const sql = page.getByRole("textbox", { name: "SQL" });
  await sql.fill("SELECT title FROM todos WHERE list_id IN (SELECT list_id FROM lists WHERE name LIKE 'List %') AND NOT deleted ORDER BY position");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.locator("table.query-result tbody tr").filter({ hasText: "written offline" })).toHaveCount(1);
  await sql.fill("DELETE FROM todos");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.getByRole("alert")).toContainText("only reads");
  await page.getByRole("combobox", { name: "Database" }).selectOption("events");
  await sql.fill("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.getByRole("alert")).toContainText("too long", { timeout: 15_000 });
  await sql.fill("SELECT count(*) AS pending FROM outbox");
  await sql.press("Control+Enter");
  await expect(page.locator("table.query-result tbody td")).toHaveText("1");

  // Rebuild the views: same list afterwards.
  await page.getByRole("button", { name: "Rebuild views" }).click();
  await expect(page.locator(".inspect-done")).toContainText(/rebuilt from \d+ events/);
  // Export: one JSON line per event, as many as it says.
  await page.getByRole("button", { name: "Export the log" }).click();
  const link = page.locator("a.export-link");
  await expect(link).toBeVisible();
  const said = Number((await link.textContent())?.match(/\((\d+) events\)/)?.[1]);
  const download = await Promise.all([page.waitForEvent("download"), link.click()]).then(([d]) => d);
  const text = fs.readFileSync(await download.path(), "utf8");
  const lines = text.trim().split("\n");
  expect(lines.length).toBe(said);
  expect(lines.some((l) => JSON.parse(l).event_type === "TodoCreated")).toBe(true);
  // A second export replaces the link (the first blob is freed); leaving frees the second.
  const blobs = () => page.evaluate(() => (window as unknown as { __blobs: { made: number; freed: number } }).__blobs);
  await page.getByRole("button", { name: "Export the log" }).click();
  await expect.poll(async () => (await blobs()).made).toBe(2);
  expect((await blobs()).freed).toBe(1);
  await page.getByRole("link", { name: "← Back to your lists" }).click();
  await expect(page.locator("input.new-todo")).toBeVisible();
  expect(await blobs()).toEqual({ made: 2, freed: 2 });

  await context.setOffline(false);
  await page.goto(list);
  await ready(page);
  await expect(items(page).locator("label")).toHaveText(["milk", "bread", "written offline"]);
});
