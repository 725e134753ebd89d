import { type BrowserContext, type Page } from "@playwright/test";
import { expect, test, addTodos, device, freshList, items, ready, syncStatus } from "./helpers";

// DESIGN.md rule 19 in the browser: two devices (contexts) offline at once edit the same
// to-do; once both are back, each shows the same value and a "Resolve conflict" button; the
// dialog lists every competing value with its device's name; keeping one (or typing a merged
// one) ends the conflict everywhere.

async function nameDevice(page: Page, name: string) {
  const input = page.getByRole("textbox", { name: "Device name" });
  await expect(input).toHaveValue(/ on /); // the default from the browser and OS
  await input.fill(name);
  await input.press("Enter");
  await expect(input).toHaveValue(name);
}

async function synced(...pages: Page[]) {
  for (const p of pages) {
    await expect(syncStatus(p)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
    await expect(syncStatus(p)).toHaveAttribute("data-sync-state", "online", { timeout: 10_000 });
  }
}

async function offline(on: boolean, ...devices: { context: BrowserContext; page: Page }[]) {
  for (const d of devices) await d.context.setOffline(on);
  for (const d of devices) {
    await expect(syncStatus(d.page)).toHaveAttribute("data-sync-state", on ? "offline" : "online", { timeout: 10_000 });
  }
}

async function editTitle(page: Page, index: number, title: string) {
  await items(page).nth(index).locator("label").dblclick();
  const edit = items(page).nth(index).locator("input.edit");
  await edit.fill(title);
  await edit.press("Enter");
  await expect(items(page).nth(index).locator("label")).toHaveText(title);
}

/** Two named devices on one fresh list holding `titles`, both synced. */
async function twoDevices(browser: import("@playwright/test").Browser, page: Page, context: BrowserContext, ...titles: string[]) {
  const list = await freshList(page);
  await addTodos(page, ...titles);
  const other = await device(browser);
  await other.page.goto(list);
  await ready(other.page);
  await expect(items(other.page).locator("label")).toHaveText(titles, { timeout: 5_000 });
  await nameDevice(page, "Laptop");
  await nameDevice(other.page, "Phone");
  await synced(page, other.page);
  return { me: { context, page }, other };
}

test("edits made offline on two devices show one value and a conflict; keeping one ends it everywhere", async ({ browser, page, context }) => {
  const { me, other } = await twoDevices(browser, page, context, "buy milk");
  await offline(true, me, other);
  await editTitle(page, 0, "buy oat milk");
  await editTitle(other.page, 0, "buy almond milk");
  // Both tick the box too: equal values are no conflict for the user.
  await items(page).nth(0).locator("input.toggle").check();
  await items(other.page).nth(0).locator("input.toggle").check();
  await offline(false, me, other);
  await synced(page, other.page);

  for (const p of [page, other.page]) {
    await expect(items(p).nth(0).getByRole("button", { name: "Resolve conflict" })).toBeVisible({ timeout: 10_000 });
  }
  // Every device shows the same value (the newest edit nobody superseded).
  const shown = (await items(page).nth(0).locator("label").textContent()) ?? "";
  expect(["buy oat milk", "buy almond milk"]).toContain(shown);
  await expect(items(other.page).nth(0).locator("label")).toHaveText(shown);

  await items(other.page).nth(0).getByRole("button", { name: "Resolve conflict" }).click();
  const dialog = other.page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  // Only the title: the two ticks agree.
  await expect(dialog.locator("fieldset")).toHaveCount(1);
  await expect(dialog.locator("fieldset legend")).toHaveText("Title");
  const values = dialog.locator(".competing");
  await expect(values).toHaveCount(2);
  await expect(values.filter({ hasText: "buy oat milk" })).toContainText("Laptop");
  await expect(values.filter({ hasText: "buy almond milk" })).toContainText("Phone (this device)");
  await expect(values.filter({ hasText: shown })).toContainText("shown now");

  // Keep the one that is not shown now: it becomes the value everywhere.
  const keep = shown === "buy oat milk" ? "buy almond milk" : "buy oat milk";
  await dialog.getByRole("button", { name: `Keep this: “${keep}”` }).click();
  await expect(dialog).toBeHidden();
  // The button that opened it went with the conflict: the focus goes to its row, not the page.
  await expect(items(other.page).nth(0).locator("input.toggle")).toBeFocused();
  for (const p of [page, other.page]) {
    await expect(items(p).nth(0).locator("label")).toHaveText(keep, { timeout: 10_000 });
    await expect(items(p).nth(0).getByRole("button", { name: "Resolve conflict" })).toHaveCount(0, { timeout: 10_000 });
    await expect(items(p).nth(0)).toHaveClass(/completed/);
  }
  await other.context.close();
});

test("a merged value typed in the dialog ends the conflict on both devices", async ({ browser, page, context }) => {
  const { me, other } = await twoDevices(browser, page, context, "call Ana");
  await offline(true, me, other);
  await editTitle(page, 0, "call Ana at 5");
  await editTitle(other.page, 0, "call Ana about rent");
  await offline(false, me, other);
  await synced(page, other.page);
  const badge = items(page).nth(0).getByRole("button", { name: "Resolve conflict" });
  await expect(badge).toBeVisible({ timeout: 10_000 });
  // By keyboard: the badge is focusable, the dialog traps focus, Escape closes it.
  await badge.focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(badge).toBeFocused();

  await badge.click();
  const merged = dialog.getByRole("textbox", { name: "Merged title" });
  await merged.fill("call Ana at 5");
  // While it is being typed, the other device changes the title again: the dialog shows the
  // new competing value and keeps what is typed, with the focus.
  await editTitle(other.page, 0, "call Ana about the rent");
  await expect(dialog).toContainText("call Ana about the rent", { timeout: 10_000 });
  await expect(merged).toHaveValue("call Ana at 5");
  await expect(merged).toBeFocused();
  await merged.press("End");
  await page.keyboard.type(" about rent");
  await expect(merged).toHaveValue("call Ana at 5 about rent");
  await dialog.getByRole("button", { name: "Save merged" }).click();
  await expect(dialog).toBeHidden();
  for (const p of [page, other.page]) {
    await expect(items(p).nth(0).locator("label")).toHaveText("call Ana at 5 about rent", { timeout: 10_000 });
    await expect(items(p).nth(0).getByRole("button", { name: "Resolve conflict" })).toHaveCount(0, { timeout: 10_000 });
  }
  await other.context.close();
});

test("a delete concurrent with an edit ends deleted everywhere; the edit shows once restored", async ({ browser, page, context }) => {
  const { me, other } = await twoDevices(browser, page, context, "water plants", "keep");
  await offline(true, me, other);
  await items(page).nth(0).getByRole("button", { name: "Delete water plants" }).click();
  await expect(items(page)).toHaveCount(1);
  await editTitle(other.page, 0, "water the plants");
  await offline(false, me, other);
  await synced(page, other.page);
  for (const p of [page, other.page]) {
    await expect(items(p).locator("label")).toHaveText(["keep"], { timeout: 10_000 });
  }
  // The Trash names who deleted it; restoring brings back the edit made meanwhile.
  await other.page.getByRole("link", { name: "Trash" }).click();
  const row = other.page.locator("li.trash-item").filter({ hasText: "water the plants" });
  await expect(row).toContainText("on Laptop");
  await row.getByRole("button", { name: "Restore" }).click();
  await expect(row).toHaveCount(0);
  for (const p of [page]) {
    await expect(items(p).locator("label")).toHaveText(["water the plants", "keep"], { timeout: 10_000 });
  }
  await other.context.close();
});
