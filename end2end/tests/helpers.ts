import { expect, type Browser, type BrowserContext, type Page } from "@playwright/test";

/** Waits until the page is hydrated and shows the local store (CONTRACT.md `data-ready`). */
export async function ready(page: Page) {
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
}

let lists = 0;

/**
 * Opens Tandem and makes a list of its own (tests share one server, so each works in a fresh
 * list). Returns the list's URL path.
 */
export async function freshList(page: Page, name?: string): Promise<string> {
  await page.goto("/");
  await ready(page);
  lists += 1;
  const title = name ?? `List ${Date.now().toString(36)}-${lists}`;
  const input = page.getByRole("textbox", { name: "New list" });
  await input.fill(title);
  await input.press("Enter");
  await expect(page).toHaveURL(/\/lists\/[0-9a-f-]{36}$/);
  await expect(page.locator("h1.list-title")).toHaveText(title);
  return new URL(page.url()).pathname;
}

/** Adds to-dos through `input.new-todo`, waiting for each to show. */
export async function addTodos(page: Page, ...titles: string[]) {
  const input = page.locator("input.new-todo");
  for (const title of titles) {
    const before = await page.locator("ul.todo-list li").count();
    await input.fill(title);
    await input.press("Enter");
    await expect(page.locator("ul.todo-list li")).toHaveCount(before + 1);
  }
}

export function items(page: Page) {
  return page.locator("ul.todo-list li");
}

export function syncStatus(page: Page) {
  return page.getByRole("status").and(page.locator("[data-sync-state]"));
}

/** A second device: its own browser context (its own OPFS, worker and clock). */
export async function device(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  return { context, page };
}
