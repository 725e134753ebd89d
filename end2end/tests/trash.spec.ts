import { type Page } from "@playwright/test";
import { expect, test, addTodos, device, freshList, items, ready, syncStatus } from "./helpers";

function trashItem(page: Page, title: string) {
  return page.locator("li.trash-item", { has: page.locator(".trash-title", { hasText: title }) });
}

async function openTrash(page: Page) {
  await page.getByRole("link", { name: "Trash", exact: true }).click();
  await expect(page).toHaveURL(/\/trash$/);
  await expect(page.getByRole("heading", { name: "Trash" })).toBeVisible();
}

/** Deletes the list on screen (after the page's undo window). */
async function deleteList(page: Page, name: string) {
  await page.getByRole("button", { name: "Delete list" }).click();
  await expect(page.locator("nav .list-name", { hasText: name })).toHaveCount(0, { timeout: 10_000 });
}

test("deleted to-dos and lists wait in the Trash and come back from it", async ({ page }) => {
  const list = await freshList(page, "Trash run");
  await addTodos(page, "keep", "gone");
  await items(page).nth(1).hover();
  await items(page).nth(1).locator("button.destroy").click();
  await expect(items(page)).toHaveCount(1);

  await openTrash(page);
  await expect(trashItem(page, "gone").locator(".trash-meta")).toContainText("To-do in “Trash run”");
  await expect(trashItem(page, "gone").locator(".trash-meta")).toContainText("on this device");
  await trashItem(page, "gone").getByRole("button", { name: "Restore" }).click();
  await expect(trashItem(page, "gone")).toHaveCount(0);
  await page.getByRole("link", { name: "← Back to your lists" }).click();
  await page.goto(list);
  await ready(page);
  await expect(items(page).locator("label")).toHaveText(["keep", "gone"]);

  // A deleted list takes its to-dos with it, and brings them back.
  await deleteList(page, "Trash run");
  await openTrash(page);
  const entry = trashItem(page, "Trash run");
  await expect(entry).toHaveAttribute("data-kind", "list");
  await expect(trashItem(page, "keep").locator(".trash-meta")).toContainText("deleted list “Trash run”");
  await entry.getByRole("button", { name: "Restore" }).click();
  await expect(page.locator("li.trash-item", { hasText: "Trash run" })).toHaveCount(0);
  await page.goto(list);
  await ready(page);
  await expect(items(page).locator("label")).toHaveText(["keep", "gone"]);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
});

test("a to-do hidden because another device deleted its list can be restored to a live list", async ({ page, browser }) => {
  const list = await freshList(page, "Shared then deleted");
  await addTodos(page, "rescue me");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");

  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await expect(items(other.page).locator("label")).toHaveText(["rescue me"]);
  await deleteList(other.page, "Shared then deleted");
  await expect(syncStatus(other.page)).toHaveAttribute("data-pending", "0");

  // This device learns of it live, and finds the to-do in its Trash.
  await expect(page.locator("nav .list-name", { hasText: "Shared then deleted" })).toHaveCount(0);
  await openTrash(page);
  const hidden = trashItem(page, "rescue me");
  // Named by the device that deleted it (its name from its browser and OS).
  await expect(hidden.locator(".trash-meta")).toContainText(/ on \w+ on \w+/);
  await expect(hidden.locator(".trash-meta")).not.toContainText("on this device");
  const restore = hidden.getByRole("button", { name: /^Restore to / });
  const label = await restore.textContent();
  await restore.click();
  await expect(hidden).toHaveCount(0);
  // It is in the first live list now, on both devices.
  const target = (label ?? "").replace(/^Restore to /, "");
  expect(target).not.toBe("");
  for (const p of [page, other.page]) {
    await p.goto("/");
    await ready(p);
    await p.locator("nav .list-name", { hasText: target }).first().click();
    await expect(items(p).locator("label", { hasText: "rescue me" })).toHaveCount(1);
  }
  await other.context.close();
});
