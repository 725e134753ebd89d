import { expect, test, addTodos, device, items, ready, syncStatus } from "./helpers";

// DESIGN.md rule 18's exception: a window without file storage (no OPFS, as in some private
// windows) runs from a store in memory, says so, still syncs, and asks before closing while
// edits are unsent.

test.use({ serviceWorkers: "block" });

test("a window without file storage runs from memory, syncs, and warns before closing with unsent edits", async ({ browser, page, context }) => {
  // This window's worker finds no OPFS (the method private windows of some browsers lack).
  await context.route("**/worker.js*", async (route) => {
    const response = await route.fetch();
    const body = "delete StorageManager.prototype.getDirectory;\n" + (await response.text());
    await route.fulfill({ response, body });
  });
  await page.goto("/");
  await ready(page);
  const banner = page.locator('[data-storage="memory"]');
  await expect(banner).toContainText("runs from memory");
  await expect(page.locator("body")).toHaveAttribute("data-store", "owner");

  // It works and syncs: another device sees what it wrote.
  const title = `from memory ${Date.now().toString(36)}`;
  await addTodos(page, title);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  const other = await device(browser);
  await other.page.goto(new URL(page.url()).pathname);
  await ready(other.page);
  await expect(items(other.page).filter({ hasText: title })).toHaveCount(1);
  await other.context.close();

  // Offline, an edit waits in memory: the banner counts it and closing asks first.
  await context.setOffline(true);
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "offline");
  await addTodos(page, "not sent yet");
  await expect(banner).toContainText("1 not sent yet");
  const asked = new Promise<string>((resolve) => {
    page.once("dialog", async (dialog) => {
      resolve(dialog.type());
      await dialog.dismiss();
    });
  });
  await page.close({ runBeforeUnload: true });
  expect(await asked).toBe("beforeunload");
  // Dismissed: the page stays, with its edit.
  await expect(items(page).filter({ hasText: "not sent yet" })).toHaveCount(1);
  await context.setOffline(false);
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
});
