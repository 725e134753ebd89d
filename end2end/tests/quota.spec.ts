import { expect, test, freshList, items, syncStatus } from "./helpers";

// Item 7 / rule 18: a storage quota error on write is shown, never swallowed, and nothing is
// lost: once there is room again, the device catches up.
test("a write past the storage quota is shown, and the device recovers when there is room", async ({ page, context }) => {
  await freshList(page);
  const cdp = await context.newCDPSession(page);
  const origin = new URL(page.url()).origin;
  const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
  // No room to grow: the next write that needs more space fails.
  await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: usage });
  const input = page.locator("input.new-todo");
  const alert = page.getByRole("alert");
  let shown = 0;
  for (let i = 0; i < 300 && (await alert.count()) === 0; i++) {
    await input.fill(`${"x".repeat(900)} ${i}`);
    await input.press("Enter");
    await expect.poll(async () => (await items(page).count()) > shown || (await alert.count()) > 0).toBe(true);
    shown = await items(page).count();
  }
  await expect(alert.first()).toContainText(/could not store|disk I\/O|disk is full|failed/);
  // What is on screen was committed (rule 16): it must all be there after a reload.
  const before = await items(page).locator("label").allTextContents();
  // Room again: everything shown is stored and sent; the error goes.
  await cdp.send("Storage.overrideQuotaForOrigin", { origin });
  await page.getByRole("button", { name: "Sync now" }).click();
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0", { timeout: 15_000 });
  await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "online");
  await page.reload();
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  const after = await items(page).locator("label").allTextContents();
  expect(before.filter((t) => !after.includes(t))).toEqual([]);
});
