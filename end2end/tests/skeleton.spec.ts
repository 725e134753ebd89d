import { expect, test, type Page } from "@playwright/test";

// The walking skeleton end to end: server-side rendering, hydration, a server function round
// trip, and SQLite in OPFS owned by a Dedicated Worker, surviving a reload.

async function ready(page: Page) {
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
}

async function todos(page: Page): Promise<number> {
  const state = page.locator(".store-state");
  await expect(state).toHaveAttribute("data-state", "ready");
  return Number(await state.getAttribute("data-todos"));
}

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the page is rendered by the server", async ({ page }) => {
    await page.goto("/");
    await expect(page).toHaveTitle("Tandem");
    await expect(page.getByRole("heading", { name: "Tandem" })).toBeVisible();
    await expect(page.locator("section.todoapp")).toBeVisible();
    // The server's views: the default list made on first run.
    await expect(page.locator("h2.list-name")).toHaveText("Inbox");
    await expect(page.locator(".store-state")).toHaveText("Local store: opening…");
    await expect(page.locator("body")).not.toHaveAttribute("data-ready", /.*/);
  });
});

test("the page hydrates and a click changes state", async ({ page }) => {
  await page.goto("/");
  await ready(page);
  expect(await todos(page)).toBe(0);
  await page.getByRole("button", { name: "Add a to-do" }).click();
  // The first to-do also creates the device's first list: two events in the outbox.
  await expect(page.locator(".store-state")).toHaveText("Local store: 1 to-do, 2 events not yet synced");
  await expect(page.locator(".store-state")).toHaveAttribute("data-todos", "1");
});

test("the server function round trip is shown on the page", async ({ page }) => {
  await page.goto("/");
  await ready(page);
  await page.getByRole("button", { name: "Check server" }).click();
  await expect(page.locator(".server-report")).toHaveText(/^Server \d+\.\d+\.\d+ · clock offset [+-]\d+ ms$/);
});

test("events written in the OPFS worker survive a reload", async ({ page }) => {
  await page.goto("/");
  await ready(page);
  // Each test has a fresh browser context, so OPFS starts empty.
  expect(await todos(page)).toBe(0);
  const add = page.getByRole("button", { name: "Add a to-do" });
  const state = page.locator(".store-state");
  await add.click();
  await expect(state).toHaveAttribute("data-todos", "1");
  await add.click();
  await expect(state).toHaveAttribute("data-todos", "2");
  await expect(state).toHaveAttribute("data-events", "3");

  const clockBefore = await state.getAttribute("data-clock");
  await page.reload();
  await ready(page);
  expect(await todos(page)).toBe(2);
  // The device clock (SQL hlc_now() in the worker's events.db) keeps its node and never goes back.
  const clockAfter = await state.getAttribute("data-clock");
  expect(clockBefore).toMatch(/^\d{15}-\d{10}-[0-9a-f-]{36}$/);
  expect(clockAfter!.slice(27)).toBe(clockBefore!.slice(27));
  expect(clockAfter! > clockBefore!).toBe(true);
  await expect(state).toHaveAttribute("data-events", "3");
  await add.click();
  await expect(state).toHaveAttribute("data-todos", "3");
  await expect(state).toHaveAttribute("data-events", "4");
});

test("unknown pages answer 404 with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("link", { name: "Back to Tandem" })).toBeVisible();
});
