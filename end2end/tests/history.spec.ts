import { expect, test, addTodos, device, freshList, items, ready, syncStatus } from "./helpers";

// An item's History lists every event of it (what changed, old -> new, device, time, pending
// or synced); "View the list as of this" replays the list to that moment, read-only.

test("an item's history reads old to new, pending then synced, with the device's name", async ({ browser, page, context }) => {
  const list = await freshList(page);
  const name = page.getByRole("textbox", { name: "Device name" });
  await expect(name).toHaveValue(/ on /);
  await name.fill("Laptop");
  await name.press("Enter");
  await addTodos(page, "milk", "bread");
  await items(page).nth(0).locator("label").dblclick();
  await items(page).nth(0).locator("input.edit").fill("oat milk");
  await items(page).nth(0).locator("input.edit").press("Enter");
  await items(page).nth(0).locator("input.toggle").click();
  await expect(items(page).nth(0)).toHaveClass(/completed/);
  // Everything so far has reached the server (its history says so; the status bar's count may
  // not have caught up with the last writes yet).
  await items(page).nth(0).getByRole("button", { name: "Details of oat milk" }).click();
  await items(page).nth(0).getByRole("button", { name: "History" }).click();
  const before = page.getByRole("dialog", { name: "History of “oat milk”" });
  await expect(before.locator("li.history-entry")).toHaveCount(3);
  await expect(before.locator(".history-state.pending")).toHaveCount(0, { timeout: 10_000 });
  await page.keyboard.press("Escape");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  await context.setOffline(true);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "offline");
  await items(page).nth(0).getByLabel("Notes").fill("2 litres");
  await items(page).nth(0).getByLabel("Notes").blur();
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "1");

  await items(page).nth(0).getByRole("button", { name: "History" }).click();
  const dialog = page.getByRole("dialog", { name: "History of “oat milk”" });
  await expect(dialog).toBeVisible();
  const entries = dialog.locator("li.history-entry");
  await expect(entries.locator(".history-what")).toHaveText([
    "Notes: none → “2 litres”",
    "Marked done",
    "Title: “milk” → “oat milk”",
    /Created “milk”\s*In the list “List /,
  ]);
  await expect(entries.nth(0).locator(".history-state")).toHaveText("Pending");
  await expect(entries.nth(1).locator(".history-state")).toHaveText("Synced");
  await expect(entries.nth(1)).toContainText("Laptop (this device)");
  // Back online, the pending one becomes synced while the dialog is open.
  await context.setOffline(false);
  await expect(entries.nth(0).locator(".history-state")).toHaveText("Synced", { timeout: 10_000 });
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();

  // Another device reads the same history, named by the device that made it.
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await items(other.page).nth(0).getByRole("button", { name: "Details of oat milk" }).click();
  await items(other.page).nth(0).getByRole("button", { name: "History" }).click();
  const there = other.page.getByRole("dialog");
  await expect(there.locator("li.history-entry")).toHaveCount(4);
  await expect(there.locator("li.history-entry").nth(2)).toContainText("Laptop");
  await expect(there.locator("li.history-entry").nth(2)).not.toContainText("this device");
  await other.context.close();
});

test("view as of a moment shows the whole list as it was, read-only, with one way back", async ({ page }) => {
  await freshList(page);
  await addTodos(page, "milk", "bread");
  await items(page).nth(0).locator("label").dblclick();
  await items(page).nth(0).locator("input.edit").fill("oat milk");
  await items(page).nth(0).locator("input.edit").press("Enter");
  await addTodos(page, "eggs");
  await items(page).nth(1).locator("input.toggle").check();
  await items(page).nth(2).getByRole("button", { name: "Delete eggs" }).click();
  await expect(items(page)).toHaveCount(2);

  // The moment "bread" was created: "milk" is still called milk, nothing is done.
  await items(page).nth(1).getByRole("button", { name: "Details of bread" }).click();
  await items(page).nth(1).getByRole("button", { name: "History" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.locator("li.history-entry").last().getByRole("button", { name: "View the list as of this" }).click();
  await expect(dialog).toBeHidden();
  const asOf = page.getByRole("region", { name: "The list as it was" });
  await expect(asOf.getByRole("status")).toContainText("Read-only");
  await expect(asOf.locator(".as-of-title")).toHaveText(["milk", "bread"]);
  await expect(asOf.locator(".as-of-item.completed")).toHaveCount(0);
  // Nothing can be changed from here.
  await expect(page.locator("input.new-todo")).toHaveCount(0);
  await expect(page.locator("ul.todo-list")).toHaveCount(0);
  await expect(asOf.getByRole("button", { name: "Back to now" })).toBeFocused();
  await asOf.getByRole("button", { name: "Back to now" }).click();
  await expect(asOf).toHaveCount(0);
  await expect(items(page).locator("label")).toHaveText(["oat milk", "bread"]);
  await expect(page.locator("input.new-todo")).toHaveCount(1);

  // The list has a history of its own: its creation.
  await page.getByRole("button", { name: "History" }).first().click();
  const listHistory = page.getByRole("dialog");
  await expect(listHistory.locator("li.history-entry")).toHaveCount(1);
  await expect(listHistory.locator(".history-what")).toHaveText([/Created “List /]);
  await page.keyboard.press("Escape");
});
