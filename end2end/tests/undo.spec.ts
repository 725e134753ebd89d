import { type Page } from "@playwright/test";
import { expect, test, addTodos, device, freshList, items, ready, syncStatus } from "./helpers";

// Undo and redo record compensating events (DESIGN.md rule 19): they take back only this
// device's own actions, sync like any edit, survive a reload, and never revert someone else's
// later change (refused, naming who).

const undo = (page: Page) => page.locator("header.masthead").getByRole("button", { name: "Undo", exact: true });
const redo = (page: Page) => page.locator("header.masthead").getByRole("button", { name: "Redo", exact: true });

async function blur(page: Page) {
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
}

test("undo and redo by button and keyboard, one step per command, kept across a reload", async ({ page }) => {
  await freshList(page);
  await addTodos(page, "milk", "bread", "eggs");
  await items(page).nth(0).locator("label").dblclick();
  await items(page).nth(0).locator("input.edit").fill("oat milk");
  await items(page).nth(0).locator("input.edit").press("Enter");
  await expect(undo(page)).toHaveAttribute("title", /edit the title/);

  await undo(page).click();
  await expect(items(page).locator("label")).toHaveText(["milk", "bread", "eggs"]);
  await expect(page.locator(".undo-notice")).toHaveText("Undone: edit the title");
  await blur(page);
  await page.keyboard.press("Control+z");
  await expect(items(page).locator("label")).toHaveText(["milk", "bread"]);
  await page.keyboard.press("Control+Shift+Z");
  await expect(items(page).locator("label")).toHaveText(["milk", "bread", "eggs"]);
  await redo(page).click();
  await expect(items(page).locator("label")).toHaveText(["oat milk", "bread", "eggs"]);
  await expect(redo(page)).toBeDisabled();

  // Mark all is one step.
  // (A click, not check(): a sync acknowledgement may re-render the box before the command's
  // own change set ticks it, which check() reads as "did not change".)
  await page.locator("input.toggle-all").click();
  await expect(page.locator("span.todo-count")).toHaveText("0 items left");
  await undo(page).click();
  await expect(page.locator("span.todo-count")).toHaveText("3 items left");

  // Ctrl+Z inside a text field is the field's own undo, not Tandem's.
  await page.locator("input.new-todo").fill("typing");
  await page.locator("input.new-todo").press("Control+z");
  await expect(items(page)).toHaveCount(3);
  await page.locator("input.new-todo").fill("");

  // The history is in the device's store: it survives a reload.
  await page.reload();
  await ready(page);
  await expect(redo(page)).toBeEnabled();
  await expect(undo(page)).toHaveAttribute("title", /edit the title/);
  await undo(page).click();
  await expect(items(page).locator("label")).toHaveText(["milk", "bread", "eggs"]);
});

test("an undo never reverts another device's later change: it is refused, naming who", async ({ browser, page }) => {
  const list = await freshList(page);
  const name = page.getByRole("textbox", { name: "Device name" });
  await expect(name).toHaveValue(/ on /);
  await addTodos(page, "milk");
  await items(page).nth(0).locator("label").dblclick();
  await items(page).nth(0).locator("input.edit").fill("oat milk");
  await items(page).nth(0).locator("input.edit").press("Enter");

  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  const otherName = other.page.getByRole("textbox", { name: "Device name" });
  await expect(otherName).toHaveValue(/ on /);
  await otherName.fill("Phone");
  await otherName.press("Enter");
  await items(other.page).nth(0).locator("label").dblclick();
  await items(other.page).nth(0).locator("input.edit").fill("almond milk");
  await items(other.page).nth(0).locator("input.edit").press("Enter");
  await expect(items(page).nth(0).locator("label")).toHaveText("almond milk", { timeout: 10_000 });

  await undo(page).click();
  await expect(page.locator(".undo-notice .refused")).toHaveText("Cannot undo: Phone changed the title since");
  for (const p of [page, other.page]) {
    await expect(items(p).nth(0).locator("label")).toHaveText("almond milk");
  }
  await other.context.close();
});

test("an undo made offline syncs like any edit", async ({ browser, page, context }) => {
  const list = await freshList(page);
  await addTodos(page, "call Ana", "water plants");
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await expect(items(other.page)).toHaveCount(2);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });

  await context.setOffline(true);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "offline");
  await items(page).nth(1).getByRole("button", { name: "Delete water plants" }).click();
  await items(page).nth(0).locator("input.toggle").check();
  await undo(page).click();
  await undo(page).click();
  await expect(items(page).locator("label")).toHaveText(["call Ana", "water plants"]);
  await expect(items(page).nth(0)).not.toHaveClass(/completed/);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "4");

  await context.setOffline(false);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  // The other device saw the deletes and completes come and go: it ends where this one is.
  await expect(items(other.page).locator("label")).toHaveText(["call Ana", "water plants"], { timeout: 10_000 });
  await expect(items(other.page).nth(0)).not.toHaveClass(/completed/);
  await other.context.close();
});
