import { expect, test } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { addTodos, freePort, healthy, items, ready, startServer, stopped, syncStatus } from "./helpers";

// The README's tour: screenshots of the real page, made by the suite on every run
// (docs/screenshots/). They also check that the page looks like what the README says.
const shots = path.join(__dirname, "../../docs/screenshots");

test("the tour: a list, an item's detail, dark mode, a phone, offline, the Trash", async ({ page, context }) => {
  // A server of its own, so the pictures show only what the tour makes.
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-tour-"));
  const server = startServer(port, dataDir);
  try {
    await healthy(port);
    await tour(page, context, `http://127.0.0.1:${port}`);
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
