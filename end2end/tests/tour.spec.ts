import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, test, addTodos, freePort, healthy, items, ready, signIn, startServer, stopped, syncStatus } from "./helpers";

// The README's tour: screenshots of the real page, made by the suite on every run
// (docs/screenshots/). They also check that the page looks like what the README says.
const shots = path.join(__dirname, "../../docs/screenshots");

test("the tour: a list, an item's detail, dark mode, a phone, offline, the Trash, a conflict, history, the inspector", async ({ browser, page, context }) => {
  // A server of its own, so the pictures show only what the tour makes.
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-tour-"));
  const server = startServer(port, dataDir);
  try {
    await healthy(port);
    await signIn(context, `http://127.0.0.1:${port}`, "ann", "ann's password, long enough");
    await tour(page, context, `http://127.0.0.1:${port}`);
    await conflictAndHistory(browser, page, context, `http://127.0.0.1:${port}`);
    await members(browser, page, `http://127.0.0.1:${port}`);
  } finally {
    await stopped(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

async function tour(page: import("@playwright/test").Page, context: import("@playwright/test").BrowserContext, base: string) {
  await page.setViewportSize({ width: 1100, height: 720 });
  await page.goto(`${base}/`);
  await ready(page);
  for (const name of ["Groceries", "Work", "Home"]) {
    await page.getByRole("textbox", { name: "New list" }).fill(name);
    await page.getByRole("textbox", { name: "New list" }).press("Enter");
    await expect(page.locator("h1.list-title")).toHaveText(name);
  }
  await page.locator("nav a", { hasText: "Groceries" }).click();
  await expect(page.locator("h1.list-title")).toHaveText("Groceries");
  await addTodos(page, "oat milk tomorrow", "sourdough bread", "coffee beans 2031-01-09", "olive oil", "apples");
  await items(page).nth(1).locator("input.toggle").check();
  await expect(page.locator("span.todo-count")).toHaveText("4 items left");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
  await page.locator("input.new-todo").fill("call Ana fri");
  await expect(page.locator(".quick-due")).toBeVisible();
  await page.screenshot({ path: path.join(shots, "list.png") });

  await page.locator("input.new-todo").fill("");
  await items(page).nth(2).getByRole("button", { name: /^Details of/ }).click();
  await items(page).nth(2).getByLabel("Notes").fill("The Ethiopian ones, whole beans.");
  await page.locator("input.new-todo").focus();
  await page.screenshot({ path: path.join(shots, "detail.png") });

  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: path.join(shots, "dark.png") });
  await page.emulateMedia({ colorScheme: "light" });

  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: path.join(shots, "phone.png"), fullPage: true });

  await page.setViewportSize({ width: 1100, height: 720 });
  await context.setOffline(true);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "offline");
  await addTodos(page, "written on the train");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");
  await page.screenshot({ path: path.join(shots, "offline.png") });
  await context.setOffline(false);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });

  for (const n of [4, 3]) {
    await items(page).nth(n).hover();
    await items(page).nth(n).locator("button.destroy").click();
  }
  await expect(items(page)).toHaveCount(4);
  await page.getByRole("link", { name: "Trash", exact: true }).click();
  await expect(page.locator("li.trash-item")).toHaveCount(2);
  await page.screenshot({ path: path.join(shots, "trash.png") });
}

async function conflictAndHistory(
  browser: import("@playwright/test").Browser,
  page: import("@playwright/test").Page,
  context: import("@playwright/test").BrowserContext,
  base: string,
) {
  await page.setViewportSize({ width: 1100, height: 720 });
  await page.goto(`${base}/`);
  await ready(page);
  await page.locator("nav a", { hasText: "Groceries" }).click();
  await expect(page.locator("h1.list-title")).toHaveText("Groceries");
  const name = page.getByRole("textbox", { name: "Device name" });
  await name.fill("Laptop");
  await name.press("Enter");
  const other = await browser.newContext();
  await signIn(other, base, "ann", "ann's password, long enough");
  const phone = await other.newPage();
  await phone.goto(page.url());
  await ready(phone);
  const phoneName = phone.getByRole("textbox", { name: "Device name" });
  await expect(phoneName).toHaveValue(/ on /);
  await phoneName.fill("Phone");
  await phoneName.press("Enter");
  await expect(items(phone).first()).toBeVisible();
  for (const p of [page, phone]) await expect(syncStatus(p)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  await context.setOffline(true);
  await other.setOffline(true);
  for (const [p, title] of [[page, "oat milk, 2 litres"], [phone, "oat milk (the barista one)"]] as const) {
    await expect(syncStatus(p)).toHaveAttribute("data-sync-state", "offline");
    await items(p).nth(0).locator("label").dblclick();
    await items(p).nth(0).locator("input.edit").fill(title);
    await items(p).nth(0).locator("input.edit").press("Enter");
  }
  await context.setOffline(false);
  await other.setOffline(false);
  const badge = items(page).nth(0).getByRole("button", { name: "Resolve conflict" });
  await expect(badge).toBeVisible({ timeout: 10_000 });
  await page.screenshot({ path: path.join(shots, "conflict-badge.png") });
  await badge.click();
  await expect(page.getByRole("dialog").locator(".competing")).toHaveCount(2);
  await page.screenshot({ path: path.join(shots, "conflict.png") });
  await page.getByRole("dialog").getByRole("button", { name: "Keep this: “oat milk (the barista one)”" }).click();
  await expect(badge).toHaveCount(0, { timeout: 10_000 });
  await other.close();

  await items(page).nth(0).getByRole("button", { name: /^Details of/ }).click();
  await items(page).nth(0).getByRole("button", { name: "History" }).click();
  await expect(page.getByRole("dialog").locator("li.history-entry")).toHaveCount(4);
  await page.screenshot({ path: path.join(shots, "history.png") });
  await page.keyboard.press("Escape");

  await page.getByRole("link", { name: "Inspect" }).click();
  await expect(page.locator("table.events-table tbody tr").first()).toBeVisible();
  await page.getByRole("textbox", { name: "SQL" }).fill("SELECT event_type, count(*) AS events FROM events GROUP BY 1 ORDER BY 2 DESC");
  await page.getByRole("combobox", { name: "Database" }).selectOption("events");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.locator("table.query-result tbody tr").first()).toBeVisible();
  await page.screenshot({ path: path.join(shots, "inspect.png"), fullPage: true });
}

/** The Members view: Bob joined by an invite link; another link waits, pending. */
async function members(browser: import("@playwright/test").Browser, page: import("@playwright/test").Page, base: string) {
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.goto(`${base}/`);
  await ready(page);
  await page.getByRole("link", { name: "Members" }).click();
  await ready(page);
  await page.getByRole("button", { name: "Invite" }).click();
  const link = await page.getByRole("textbox", { name: "Invite link" }).inputValue();
  const bob = await browser.newContext();
  const bobPage = await bob.newPage();
  await bobPage.goto(link);
  await ready(bobPage);
  await bobPage.getByLabel("Username", { exact: true }).fill("bob");
  await bobPage.getByLabel("Password", { exact: true }).fill("bob's password, long enough");
  await bobPage.getByRole("button", { name: "Sign up" }).click();
  await bobPage.getByRole("button", { name: "Join" }).click();
  await expect(bobPage).toHaveURL(/\/w\//);
  await bob.close();
  await page.reload();
  await ready(page);
  await page.getByLabel("Role", { exact: true }).selectOption("reader");
  await page.getByRole("button", { name: "Invite" }).click();
  await expect(page.getByLabel("Role of bob")).toHaveValue("member");
  await expect(page.locator(".invite-item")).toHaveCount(1);
  await page.screenshot({ path: path.join(shots, "members.png"), fullPage: true });
}
